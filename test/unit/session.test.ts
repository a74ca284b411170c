// The session against scripted TCP peers: a server that answers, stalls, resets, half-closes or
// speaks something else, and clients that misbehave. Each test names the fault path it guards.
import t from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import { FakeClock } from '../../src/clock';
import {
  scriptedServer, startRig, startupMessage, loginAnswer, query, terminate, message, readyForQuery, cancelPacket,
  firstError, exchange, until,
} from '../helpers/session-rig';

/** A server that answers every StartupMessage like a trusting PostgreSQL. */
function answering(pid = 4242, secret = 77) {
  return (s: net.Socket) => s.once('data', () => s.write(loginAnswer(pid, secret)));
}

t.test('a session relays both ways and ends with client-terminate after Terminate', async (t) => {
  const server = await scriptedServer(t, (s) => {
    s.once('data', () => {
      s.write(loginAnswer());
      s.on('data', (c: Buffer) => {
        if (c[0] === 0x51) s.write(Buffer.concat([message('C', Buffer.from('SELECT 1\0')), readyForQuery()]));
        if (c.includes(0x58)) s.end();
      });
    });
  });
  const rig = await startRig(t, { backends: [server.port] });
  const got = await exchange(rig.port, (c) => {
    c.write(startupMessage());
    c.once('data', () => {
      c.write(query('SELECT 1'));
      c.once('data', () => c.end(terminate()));
    });
  });
  const [end] = await rig.ended(1);
  t.equal(end.cause, 'client-terminate');
  t.equal(end.backend, 's1');
  t.same(rig.record.starts, ['s1'], 'counted as a session start once');
  t.ok(got.includes(message('C', Buffer.from('SELECT 1\0'))), 'the server answer reached the client');
  t.equal(rig.topology.get('s1')!.activeSessions, 0, 'the backend session count is back to 0');
  t.equal(rig.ctx.startups.count('s1'), 0, 'its startup slot was given back');
  t.equal(rig.listener.sessions.size, 0);
});

t.test('half-close: a client FIN does not drop server bytes still on their way to it', async (t) => {
  const big = Buffer.alloc(4 * 1024 * 1024, 0x61);
  const server = await scriptedServer(
    t,
    (s) => {
      s.once('data', () => {
        s.write(loginAnswer());
        // Answer only once the client's FIN has arrived (through pgwarden), then close.
        s.on('end', () => s.end(Buffer.concat([message('D', big), readyForQuery()])));
      });
    },
    true,
  );
  const rig = await startRig(t, { backends: [server.port] });
  const got = await exchange(rig.port, (c) => {
    c.write(startupMessage());
    c.once('data', () => c.end(query('SELECT big')));
  });
  t.equal(got.length, loginAnswer().length + 5 + big.length + readyForQuery().length, 'every byte the server sent after the FIN arrived');
  const [end] = await rig.ended(1);
  t.equal(end.cause, 'client-closed');
});

t.test('a server that stalls is given up at startup_timeout and the client is refused once', async (t) => {
  const server = await scriptedServer(t, () => undefined); // accepts, never answers
  const rig = await startRig(t, { backends: [server.port], queueTimeout: '1s' });
  const got = await exchange(rig.port, startupMessage());
  t.equal(firstError(got)?.C, '57P03', 'no server left for the route: 57P03 after queue_timeout');
  const [end] = await rig.ended(1);
  t.equal(end.cause, 'rejected');
  t.match(rig.record.connectFailures, [{ backend: 's1', layer: 'L7TOUT' }]);
  t.equal(rig.record.rejected.length, 1, 'the refusal is reported once');
  t.equal(rig.record.clientErrors.length, 0, 'and not a second time as a client error');
  await until('the stalled connection closed', () => server.connections.every((s) => s.destroyed));
  t.equal(rig.topology.get('s1')!.activeSessions, 0);
  t.equal(rig.ctx.startups.count('s1'), 0, 'no startup slot held by the given-up attempt');
});

t.test('a server that resets before answering: the session moves to the next server', async (t) => {
  const reset = await scriptedServer(t, (s) => s.once('data', () => s.resetAndDestroy()));
  const good = await scriptedServer(t, answering());
  const rig = await startRig(t, { backends: [reset.port, good.port] });
  // Round robin may pick either first; every client ends up on the answering server.
  for (let i = 0; i < 2; i++) {
    const c = net.connect(rig.port, '127.0.0.1');
    c.on('error', () => undefined);
    c.write(startupMessage());
    const [chunk] = (await once(c, 'data')) as [Buffer];
    t.equal(chunk[0], 0x52, `client ${i + 1} got the answering server's AuthenticationOk`);
    c.end(terminate());
    await once(c, 'close');
  }
  const ends = await rig.ended(2);
  t.same(ends.map((e) => e.backend), ['s2', 's2']);
  t.ok(rig.record.connectFailures.every((f) => f.backend === 's1' && f.layer === 'L4CON'));
  t.same([rig.ctx.startups.count('s1'), rig.ctx.startups.count('s2')], [0, 0], 'every startup slot given back, the reset one too');
});

t.test('a server that answers with something other than PostgreSQL is a failed connect', async (t) => {
  const http = await scriptedServer(t, (s) => s.once('data', () => s.end('HTTP/1.1 400 Bad Request\r\n\r\n')));
  const rig = await startRig(t, { backends: [http.port] });
  const got = await exchange(rig.port, startupMessage());
  const err = firstError(got);
  t.equal(err?.C, '08P01');
  t.match(err?.M, /s1 .* did not answer like a PostgreSQL server/);
  t.equal(got.indexOf('HTTP'), -1, 'none of the foreign bytes reached the client');
  const [end] = await rig.ended(1);
  t.equal(end.cause, 'server-protocol-error');
  t.match(rig.record.connectFailures, [{ backend: 's1', layer: 'L7RSP' }], 'the checker is told');
  t.same(rig.record.starts, [], 'not counted as a session start');
  t.equal(rig.ctx.startups.count('s1'), 0);
});

t.test('a throw in the connect continuation is an internal error, not a connect failure, and leaks nothing', async (t) => {
  const server = await scriptedServer(t, answering());
  const rig = await startRig(t, { backends: [server.port] });
  const original = rig.topology.sessionOpened.bind(rig.topology);
  let thrown = false;
  rig.topology.sessionOpened = (name: string) => {
    if (!thrown) {
      thrown = true;
      throw new Error('boom');
    }
    original(name);
  };
  const got = await exchange(rig.port, startupMessage());
  t.equal(firstError(got)?.C, 'XX000');
  const [end] = await rig.ended(1);
  t.equal(end.cause, 'internal-error');
  t.equal(rig.record.internalErrors.length, 1);
  t.same(rig.record.connectFailures, [], 'not reported as a connect failure');
  t.equal(rig.topology.get('s1')!.activeSessions, 0, 'no session count leaked');
  await until('the server socket closed', () => server.connections.length === 1 && server.connections[0].destroyed);
  t.equal(rig.listener.sessions.size, 0);
  t.equal(rig.ctx.startups.count('s1'), 0, 'no startup slot leaked');
});

t.test('max_concurrent_startups 1: the second session waits until the first one is ready', async (t) => {
  const pending: net.Socket[] = [];
  const server = await scriptedServer(t, (s) => s.once('data', () => pending.push(s)));
  const rig = await startRig(t, { backends: [server.port], proxy: { max_concurrent_startups: '1' }, queueTimeout: '10s' });
  const first = net.connect(rig.port, '127.0.0.1').on('error', () => undefined);
  first.write(startupMessage());
  await until('the first startup reached the server', () => pending.length === 1);
  const second = net.connect(rig.port, '127.0.0.1').on('error', () => undefined);
  second.write(startupMessage());
  await until('the second session waits in the queue', () => rig.ctx.router.queued === 1);
  t.equal(server.connections.length, 1, 'and has not connected to the server');
  t.equal(rig.ctx.startups.count('s1'), 1);
  pending[0]!.write(loginAnswer());
  await once(first, 'data');
  await until('the second startup reached the server once the first was ready', () => pending.length === 2);
  pending[1]!.write(loginAnswer());
  await once(second, 'data');
  t.equal(rig.ctx.startups.peak('s1'), 1, 'never two at once');
  first.end(terminate());
  second.end(terminate());
  await rig.ended(2);
  t.equal(rig.ctx.startups.count('s1'), 0);
});

t.test('a client that sends nothing gets 08P01 at client_login_timeout (fake time)', async (t) => {
  const clock = new FakeClock(Date.now());
  const rig = await startRig(t, { backends: [9], clock });
  const c = net.connect(rig.port, '127.0.0.1');
  const parts: Buffer[] = [];
  c.on('data', (b: Buffer) => parts.push(b));
  await once(c, 'connect');
  await until('the session exists', () => rig.listener.sessions.size === 1);
  const closed = once(c, 'close');
  await clock.advanceAsync(2_000);
  await closed;
  t.equal(firstError(Buffer.concat(parts))?.C, '08P01');
  const [end] = await rig.ended(1);
  t.equal(end.cause, 'login-timeout');
  await until('no session timer left behind', () => clock.pendingTimers === 0);
  t.pass('no session timer left behind');
});

t.test('a truncated startup packet followed by FIN gets 08P01', async (t) => {
  const rig = await startRig(t, { backends: [9] });
  const got = await exchange(rig.port, (c) => c.end(startupMessage().subarray(0, 12)));
  t.equal(firstError(got)?.C, '08P01');
  const [end] = await rig.ended(1);
  t.equal(end.cause, 'protocol-error');
});

t.test('cancel requests: a known key goes to its server only; unknown keys fan out within the budget', async (t) => {
  const cancelsSeen: Buffer[] = [];
  const server = await scriptedServer(t, (s) =>
    s.once('data', (first: Buffer) => {
      if (first.length === 16 && first.readInt32BE(4) === 80877102) {
        cancelsSeen.push(first);
        s.end();
      } else s.write(loginAnswer(1001, 2002));
    }),
  );
  const clock = new FakeClock(Date.now()); // frozen: the budget never refills
  const rig = await startRig(t, { backends: [server.port], clock, cancelRate: 3 });
  const c = net.connect(rig.port, '127.0.0.1');
  c.write(startupMessage());
  await once(c, 'data');
  await until('the session is established', () => [...rig.listener.sessions].some((s) => s.isEstablished));
  await exchange(rig.port, cancelPacket(1001, 2002));
  t.same(rig.record.cancels, ['exact']);
  for (let i = 0; i < 10; i++) await exchange(rig.port, cancelPacket(9, i));
  t.same(rig.record.cancels.slice(1), ['fanned-out', 'fanned-out', 'fanned-out', 'dropped', 'dropped', 'dropped', 'dropped', 'dropped', 'dropped', 'dropped']);
  await until('the server got its cancels', () => cancelsSeen.length === 4);
  t.equal(cancelsSeen[0].readInt32BE(8), 1001, 'the exact cancel carried the session key');
  c.destroy();
});

t.test('closeAtBoundary while the server has not answered sends the session to another server', async (t) => {
  const silent = await scriptedServer(t, () => undefined);
  const good = await scriptedServer(t, answering());
  const rig = await startRig(t, { backends: [silent.port, good.port], proxy: { startup_timeout: '30s', connect_timeout: '20s' } });
  rig.topology.setAdminState('s2', 'drain'); // the first attempt goes to the silent server
  const c = net.connect(rig.port, '127.0.0.1');
  c.write(startupMessage());
  await until('connected to the silent server', () => silent.connections.length === 1);
  rig.topology.setAdminState('s2', 'ready');
  rig.topology.setAdminState('s1', 'maint');
  for (const s of rig.listener.sessions) s.closeAtBoundary('57P01', 'maintenance', 'maint');
  const [chunk] = (await once(c, 'data')) as [Buffer];
  t.equal(chunk[0], 0x52, 'the answering server took the session');
  t.same(rig.record.redispatches, ['s1']);
  t.same(rig.record.connectFailures, [], 'a backend pgwarden closed is no connect failure');
  c.end(terminate());
  const [end] = await rig.ended(1);
  t.equal(end.backend, 's2');
});

t.test('a drained established session gets FATAL at a message boundary and ends as drained', async (t) => {
  const server = await scriptedServer(t, answering());
  const rig = await startRig(t, { backends: [server.port] });
  const c = net.connect(rig.port, '127.0.0.1');
  const parts: Buffer[] = [];
  c.on('data', (b: Buffer) => parts.push(b));
  c.write(startupMessage());
  await until('established', () => [...rig.listener.sessions].some((s) => s.isEstablished && s.isIdle));
  for (const s of rig.listener.sessions) s.closeAtBoundary('57P01', 'server s1 failed', 'down');
  await once(c, 'close');
  const err = firstError(Buffer.concat(parts));
  t.equal(err?.C, '57P01');
  const [end] = await rig.ended(1);
  t.equal(end.cause, 'drained');
  t.equal(end.reason, 'down');
});

t.test('client_idle_timeout closes an idle session with 57P05 (fake time)', async (t) => {
  const clock = new FakeClock(Date.now());
  const server = await scriptedServer(t, answering());
  const rig = await startRig(t, { backends: [server.port], clock, proxy: { client_idle_timeout: '10s' } });
  const c = net.connect(rig.port, '127.0.0.1');
  const parts: Buffer[] = [];
  c.on('data', (b: Buffer) => parts.push(b));
  c.write(startupMessage());
  await until('established and idle', () => [...rig.listener.sessions].some((s) => s.isIdle));
  const closed = once(c, 'close');
  await clock.advanceAsync(9_000);
  t.equal(rig.listener.sessions.size, 1, 'not yet: idle for less than the timeout');
  await clock.advanceAsync(7_000);
  await closed;
  t.equal(firstError(Buffer.concat(parts))?.C, '57P05');
  const [end] = await rig.ended(1);
  t.equal(end.cause, 'idle-timeout');
});

t.test('a client reset ends the session as client-reset and closes the server side', async (t) => {
  const server = await scriptedServer(t, answering());
  const rig = await startRig(t, { backends: [server.port] });
  const c = net.connect(rig.port, '127.0.0.1');
  c.on('error', () => undefined);
  c.write(startupMessage());
  await once(c, 'data');
  c.resetAndDestroy();
  const [end] = await rig.ended(1);
  t.equal(end.cause, 'client-reset');
  await until('the server socket closed', () => server.connections[0].destroyed || server.connections[0].readableEnded);
});

t.test('a server that closes mid-session ends it as server-closed', async (t) => {
  const server = await scriptedServer(t, (s) => s.once('data', () => s.end(loginAnswer())));
  const rig = await startRig(t, { backends: [server.port] });
  const got = await exchange(rig.port, startupMessage());
  t.ok(got.equals(loginAnswer()), 'the bytes the server sent before closing arrived');
  const [end] = await rig.ended(1);
  t.equal(end.cause, 'server-closed');
});

// Found while writing test/integration/socket-fuzz.test.ts (its negotiation flood): each GSSENCRequest (or SSLRequest, where TLS is
// off) was answered 'N' and reading went on, so a client could keep a session writing one answer
// per 8 bytes it sent until client_login_timeout. PostgreSQL answers one of each per connection.
t.test('a second GSSENCRequest or SSLRequest on one connection is refused like PostgreSQL does (0A000)', async (t) => {
  // The server has no TLS (answers 'N'), so after its refusal the session reads on.
  const server = await scriptedServer(t, (s) => s.once('data', () => s.write('N')));
  const rig = await startRig(t, { backends: [server.port] });
  const request = (code: number) => {
    const b = Buffer.alloc(8);
    b.writeInt32BE(8, 0);
    b.writeInt32BE(code, 4);
    return b;
  };
  const gss = request(80877104);
  const ssl = request(80877103);
  const flood = await exchange(rig.port, Buffer.concat(Array.from({ length: 1000 }, () => gss)));
  t.equal(flood.toString('latin1', 0, 1), 'N', 'the first one is answered');
  t.equal(firstError(flood.subarray(1))?.C, '0A000', 'the second one is refused');
  t.match(firstError(flood.subarray(1))?.M, /unsupported frontend protocol 1234\.5680.*second GSSENCRequest/);
  const both = await exchange(rig.port, Buffer.concat([gss, ssl, ssl]));
  t.equal(both.toString('latin1', 0, 2), 'NN', 'one GSSENCRequest and one SSLRequest are answered');
  t.match(firstError(both.subarray(2))?.M, /1234\.5679.*second SSLRequest/);
  const ends = await rig.ended(2);
  t.same(ends.map((e) => e.cause), ['protocol-error', 'protocol-error']);
});
