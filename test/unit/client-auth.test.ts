// pgwarden's side of a client's authentication (auth.mode proxy) as a pure exchange: a SCRAM
// client written from scram.ts logs in; a wrong password and an unknown user end the same way
// (28P01, after the same messages); md5 works; malformed and random messages end with 08P01 or
// 28P01, never a throw. And ServerLogin against a small server built on the same exchange.
import net from 'node:net';
import fc from 'fast-check';
import t from 'tap';
import { ClientAuthExchange, md5Answer, type StoredSecret } from '../../src/survive/client-auth';
import * as scram from '../../src/survive/scram';
import { serverLogin, ServerLoginError } from '../../src/survive/server-login';
import type { LoginSecret } from '../../src/survive/contracts';
import { createHash } from 'node:crypto';
import { framed as message } from '../helpers/framed';

const MOCK = Buffer.alloc(32, 7);
const verifier = scram.makeVerifier('s3cret', Buffer.from('0123456789abcdef'), 4096);
const stored: StoredSecret = { kind: 'scram-sha-256', verifier };
const md5Hash = 'md5' + createHash('md5').update('s3cretalice').digest('hex');

/** Body of an Authentication message ('R'): its code and data. */
function auth(msg: Buffer): { code: number; data: Buffer } {
  t.equal(msg[0], 0x52);
  return { code: msg.readInt32BE(5), data: msg.subarray(9) };
}

function saslInitial(first: string, mech = 'SCRAM-SHA-256'): Buffer {
  const data = Buffer.from(first);
  const out = Buffer.alloc(mech.length + 5 + data.length);
  out.write(mech);
  out.writeInt32BE(data.length, mech.length + 1);
  data.copy(out, mech.length + 5);
  return out;
}

/** Runs a SCRAM client with `password` against the exchange; returns the last step and the salts seen. */
function scramLogin(x: ClientAuthExchange, password: string) {
  t.equal(auth(x.start()).code, 10);
  const nonce = 'clientnonce123';
  const bare = `n=,r=${nonce}`;
  const step1 = x.receive(0x70, saslInitial(`n,,${bare}`));
  const serverFirst = auth(step1.send!).data.toString();
  const sf = scram.parseServerFirst(serverFirst, nonce);
  const key = scram.makeVerifier(password, sf.salt, sf.iterations);
  const withoutProof = `c=biws,r=${sf.nonce}`;
  const am = scram.authMessage(bare, serverFirst, withoutProof);
  const proof = scram.clientProof(key.clientKey, key.storedKey, am);
  const step2 = x.receive(0x70, Buffer.from(`${withoutProof},p=${proof.toString('base64')}`));
  return { step1, step2, salt: sf.salt, serverKey: key.serverKey, am };
}

t.test('SCRAM: the right password passes and yields the ClientKey; the server signature checks out', async (t) => {
  const { step2, serverKey, am } = scramLogin(new ClientAuthExchange('alice', stored, MOCK), 's3cret');
  t.ok(step2.result?.ok);
  const secret = (step2.result as { secret: LoginSecret }).secret;
  t.equal(secret.kind, 'scram-sha-256');
  if (secret.kind === 'scram-sha-256') t.ok(secret.clientKey.equals(verifier.clientKey));
  t.equal(auth(step2.send!).code, 12);
  t.ok(scram.serverSignatureValid(auth(step2.send!).data.toString(), serverKey, am));
});

t.test('a wrong password and an unknown user: 28P01 with PostgreSQL\'s text, after the same messages', async (t) => {
  const wrong = scramLogin(new ClientAuthExchange('alice', stored, MOCK), 'nope');
  const unknown = scramLogin(new ClientAuthExchange('mallory', { kind: 'unknown-user' }, MOCK), 'nope');
  t.same(wrong.step2.result, { ok: false, sqlstate: '28P01', message: 'password authentication failed for user "alice"' });
  t.same(unknown.step2.result, { ok: false, sqlstate: '28P01', message: 'password authentication failed for user "mallory"' });
  t.equal(unknown.step2.send, undefined);
  t.match(auth(unknown.step1.send!).data.toString(), /^r=clientnonce123[^,]+,s=[A-Za-z0-9+/=]+,i=4096$/, 'a server-first like a real one');
  const again = scramLogin(new ClientAuthExchange('mallory', { kind: 'unknown-user' }, MOCK), 'nope');
  t.ok(again.salt.equals(unknown.salt), 'the same made-up salt for the same name, as for a real role');
});

t.test('md5: the right answer passes, a wrong one is 28P01', async (t) => {
  const x = new ClientAuthExchange('alice', { kind: 'md5', hash: md5Hash }, MOCK);
  const req = auth(x.start());
  t.equal(req.code, 5);
  t.same(x.receive(0x70, Buffer.from(`${md5Answer(md5Hash, req.data)}\0`)).result, { ok: true, secret: { kind: 'md5', hash: md5Hash } });
  const y = new ClientAuthExchange('alice', { kind: 'md5', hash: md5Hash }, MOCK);
  y.start();
  t.same(y.receive(0x70, Buffer.from('md5000\0')).result, { ok: false, sqlstate: '28P01', message: 'password authentication failed for user "alice"' });
});

t.test('malformed messages end with 08P01, never a throw', async (t) => {
  const cases: [string, (x: ClientAuthExchange) => Buffer, number?][] = [
    ['another mechanism', () => saslInitial('n,,n=,r=abc', 'SCRAM-SHA-256-PLUS')],
    ['no length', () => Buffer.from('SCRAM-SHA-256\0')],
    ['a length past the end', () => Buffer.concat([Buffer.from('SCRAM-SHA-256\0'), Buffer.from([0, 0, 1, 0]), Buffer.from('n,,')])],
    ['channel binding asked', () => saslInitial('p=tls-server-end-point,,n=,r=abc')],
    ['an authzid', () => saslInitial('n,a=root,n=,r=abc')],
    ['not a password message', () => Buffer.from('x'), 0x51],
  ];
  for (const [what, body, type] of cases) {
    const x = new ClientAuthExchange('alice', stored, MOCK);
    x.start();
    const step = x.receive(type ?? 0x70, body(x));
    t.equal(step.result && !step.result.ok && step.result.sqlstate, '08P01', what);
  }
  const x = new ClientAuthExchange('alice', stored, MOCK);
  x.start();
  x.receive(0x70, saslInitial('n,,n=,r=abc'));
  t.equal((x.receive(0x70, Buffer.from('c=biws,r=wrongnonce,p=AAAA')).result as { sqlstate: string }).sqlstate, '08P01', 'a bad client-final');
});

t.test('random messages at every step: an answer or a refusal, never a throw', async (t) => {
  const secrets: StoredSecret[] = [stored, { kind: 'md5', hash: md5Hash }, { kind: 'unknown-user' }];
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 }), fc.array(fc.tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 80 })), { maxLength: 3 }), (which, messages) => {
      const x = new ClientAuthExchange('alice', secrets[which]!, MOCK);
      x.start();
      for (const [type, body] of messages) {
        const step = x.receive(type, Buffer.from(body));
        if (step.result) return !step.result.ok;
      }
      return true;
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

/** A tiny server speaking the exchange: what ServerLogin logs in to. */
async function fakeServer(t: { teardown(fn: () => void): void }, secret: StoredSecret, after?: (s: net.Socket) => void): Promise<number> {
  const server = net.createServer((s) => {
    let buf = Buffer.alloc(0);
    let x: ClientAuthExchange | undefined;
    s.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      if (!x) {
        if (buf.length < 4 || buf.length < buf.readInt32BE(0)) return;
        buf = buf.subarray(buf.readInt32BE(0));
        x = new ClientAuthExchange('alice', secret, MOCK);
        s.write(x.start());
      }
      while (buf.length >= 5 && buf.length >= 1 + buf.readInt32BE(1)) {
        const end = 1 + buf.readInt32BE(1);
        const step = x.receive(buf[0]!, buf.subarray(5, end));
        buf = buf.subarray(end);
        if (step.send) s.write(step.send);
        if (step.result?.ok === false) return void s.end(message('E', Buffer.from('C28P01\0Mx\0\0')));
        if (step.result?.ok) {
          if (after) return after(s);
          s.write(message('R', Buffer.alloc(4)));
          s.write(message('S', Buffer.from('TimeZone\0UTC\0')));
          s.write(Buffer.concat([message('K', Buffer.from([0, 0, 0x30, 0x39, 0, 0, 0, 7])), message('Z', Buffer.from('I'))]));
        }
      }
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  return (server.address() as net.AddressInfo).port;
}

async function loginTo(port: number, secret: LoginSecret) {
  const s = net.connect({ host: '127.0.0.1', port });
  s.on('error', () => undefined);
  await new Promise((r) => s.once('connect', r));
  try {
    return await serverLogin(s, new Map([['user', 'alice'], ['database', 'db']]), secret);
  } finally {
    t.equal(s.listenerCount('data'), 0, 'no listener left behind');
    s.destroy();
  }
}

t.test('ServerLogin logs in with a recovered ClientKey and with an md5 hash', async (t) => {
  const scramSecret: LoginSecret = { kind: 'scram-sha-256', clientKey: verifier.clientKey, storedKey: verifier.storedKey, serverKey: verifier.serverKey, salt: verifier.salt, iterations: 4096 };
  const r = await loginTo(await fakeServer(t, stored), scramSecret);
  t.same([r.processId, r.secretKey, [...r.parameters]], [12345, 7, [['TimeZone', 'UTC']]]);
  t.equal((await loginTo(await fakeServer(t, { kind: 'md5', hash: md5Hash }), { kind: 'md5', hash: md5Hash })).processId, 12345);
});

t.test('ServerLogin refusals: a wrong key, a lost connection, a kind the server does not ask for', async (t) => {
  const wrongKey: LoginSecret = { kind: 'scram-sha-256', clientKey: Buffer.alloc(32), storedKey: verifier.storedKey, serverKey: verifier.serverKey, salt: verifier.salt, iterations: 4096 };
  const failure = (p: Promise<unknown>) => p.then(() => ({}), (e: ServerLoginError) => ({ sqlstate: e.sqlstate, retryable: e.retryable, fromServer: e.fromServer }));
  t.same(await failure(loginTo(await fakeServer(t, stored), wrongKey)), { sqlstate: '28P01', retryable: false, fromServer: true });
  t.same(await failure(loginTo(await fakeServer(t, stored, (s) => s.destroy()), { ...wrongKey, clientKey: verifier.clientKey })), { sqlstate: '08006', retryable: true, fromServer: false });
  await t.rejects(loginTo(await fakeServer(t, stored), { kind: 'md5', hash: md5Hash }), ServerLoginError);
});
