// auth.mode proxy in the session, in front of scripted servers: the client is authenticated
// once; a server that cuts pgwarden's login off is replaced by the next candidate without the
// client being asked again (redispatch); the client then holds pgwarden's own cancel key, mapped
// to the server's in the registry. And a server that refuses the login (28P01) is the client's error.
import net from 'node:net';
import { Client } from 'pg';
import t, { type Test } from 'tap';
import { ClientAuthExchange, type StoredSecret } from '../../src/survive/client-auth';
import * as scram from '../../src/survive/scram';
import { cancelKey } from '../../src/protocol/cancel';
import { startRig } from '../helpers/session-rig';
import { framed as message } from '../helpers/framed';

const verifier = scram.makeVerifier('s3cret', Buffer.from('0123456789abcdef'), 4096);
const stored: StoredSecret = { kind: 'scram-sha-256', verifier };

/** A server that checks pgwarden's login with the exchange (`secret`), or one that hangs up on the startup. */
async function server(t: Test, behaviour: 'login' | 'hang-up', secret: StoredSecret = stored): Promise<{ port: number; logins: number }> {
  const stats = { port: 0, logins: 0 };
  const srv = net.createServer((s) => {
    s.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    let x: ClientAuthExchange | undefined;
    let in_ = false;
    s.on('data', (chunk) => {
      if (in_) return void (chunk.includes(0x58) && s.end()); // after the login: Terminate ends it
      buf = Buffer.concat([buf, chunk]);
      if (!x) {
        if (buf.length < 4 || buf.length < buf.readInt32BE(0)) return;
        if (behaviour === 'hang-up') return void s.destroy();
        buf = buf.subarray(buf.readInt32BE(0));
        x = new ClientAuthExchange('alice', secret, Buffer.alloc(32));
        s.write(x.start());
      }
      while (buf.length >= 5 && buf.length >= 1 + buf.readInt32BE(1)) {
        const end = 1 + buf.readInt32BE(1);
        const step = x.receive(buf[0]!, buf.subarray(5, end));
        buf = buf.subarray(end);
        if (step.send) s.write(step.send);
        if (step.result?.ok === false) return void s.end(message('E', Buffer.from(`SFATAL\0C${step.result.sqlstate}\0M${step.result.message}\0\0`)));
        if (step.result?.ok) {
          stats.logins++;
          in_ = true;
          s.write(Buffer.concat([message('R', Buffer.alloc(4)), message('S', Buffer.from('server_version\x0015.0\0')), message('K', Buffer.from([0, 0, 0x30, 0x39, 0, 0, 0, 7])), message('Z', Buffer.from('I'))]));
        }
      }
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.teardown(() => srv.close());
  stats.port = (srv.address() as net.AddressInfo).port;
  return stats;
}

t.test('a login cut off by one server goes on to the next; the client holds pgwarden\'s key', async (t) => {
  const bad = await server(t, 'hang-up');
  const good = await server(t, 'login');
  let lookups = 0;
  const rig = await startRig(t, { backends: [bad.port, good.port], lookupSecret: async () => (lookups++, stored) });
  // Two sessions so that round robin reaches the hanging-up server at least once.
  for (let i = 0; i < 2; i++) {
    const c = new Client({ host: '127.0.0.1', port: rig.port, user: 'alice', password: 's3cret', database: 'db' });
    await c.connect();
    const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
    t.not(processID, 12345, "pgwarden's process id, not the server's");
    t.match(rig.ctx.cancels.get(cancelKey(processID, secretKey)), { port: good.port, serverKey: { processId: 12345, secretKey: 7 } }, 'mapped to the server that has the session');
    await c.end();
  }
  t.equal(good.logins, 2);
  t.equal(lookups, 2, 'authenticated once per session, not once per server tried');
  t.ok(rig.record.connectFailures.some((f) => f.backend === 's1'), 'the cut-off login counts as a failed connect of that server');
});

t.test("a server that refuses pgwarden's login: the client gets the server's error", async (t) => {
  const other = scram.makeVerifier('changed', Buffer.from('0123456789abcdef'), 4096);
  const srv = await server(t, 'login', { kind: 'scram-sha-256', verifier: other });
  const rig = await startRig(t, { backends: [srv.port], lookupSecret: async () => stored });
  const c = new Client({ host: '127.0.0.1', port: rig.port, user: 'alice', password: 's3cret', database: 'db' });
  c.on('error', () => undefined);
  const err = await c.connect().then(() => undefined, (e: { code?: string; message: string }) => e);
  t.match(err, { code: '28P01', message: 'password authentication failed for user "alice"' });
  const ends = await rig.ended(1);
  t.equal(ends[0]!.cause, 'login-failed');
});
