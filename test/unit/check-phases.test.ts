// A check result carries where its time went (connect, tls, auth, query): the phase timer with a
// fake clock, and real probes against local sockets — a listener on port 0 for the tcp check, a
// port where nothing listens for the postgres check (a refused connect fails in its connect
// phase). Timings against a real PostgreSQL are in test/integration/probes.test.ts.
import { createServer, type Server } from 'node:net';
import t from 'tap';
import { PhaseTimer } from '../../src/health/phase-timer';
import { postgresProbe } from '../../src/health/postgres-probe';
import { tcpProbe } from '../../src/health/tcp-probe';
import { freePort } from '../../src/harness/ports';

t.test('PhaseTimer: each phase lasts until the next one starts; a phase entered twice adds up', async (t) => {
  let now = 1000;
  const timer = new PhaseTimer(() => now);
  t.same(timer.finish(), {}, 'nothing entered, nothing timed');
  timer.enter('connect');
  now += 2.5;
  timer.enter('tls');
  now += 10;
  timer.enter('connect'); // sslmode=prefer: the server refused TLS, connect again in plain text
  now += 1.5;
  timer.enter('auth');
  now += 20.0004;
  timer.enter('query');
  now += 0.25;
  t.same(timer.finish(), { connect: 4, tls: 10, auth: 20, query: 0.25 }, 'milliseconds to the µs');
  now += 100;
  t.same(timer.finish(), { connect: 4, tls: 10, auth: 20, query: 0.25 }, 'finish() ends the phase once');
});

t.test('tcp check: a success and a refusal carry their connect time', async (t) => {
  const server: Server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  const ok = await tcpProbe('127.0.0.1', port, 2000, 'primary')(new AbortController().signal);
  t.match(ok, { ok: true, phases: { connect: Number } });
  t.same(Object.keys(ok.phases ?? {}), ['connect'], 'only the connect phase');

  const closed = await freePort();
  const refused = await tcpProbe('127.0.0.1', closed, 2000, 'primary')(new AbortController().signal);
  t.match(refused, { ok: false, layer: 'L4CON', phases: { connect: Number } });
});

t.test('postgres check: a refused connect fails in its connect phase, and the result says so', async (t) => {
  const closed = await freePort();
  const probe = postgresProbe({ host: '127.0.0.1', port: closed, user: 'pgwarden', database: 'postgres', timeoutMs: 2000 });
  t.teardown(() => probe.close?.());
  const result = await probe(new AbortController().signal);
  t.match(result, { ok: false, layer: 'L4CON', phases: { connect: Number } });
  t.same(Object.keys(result.phases ?? {}), ['connect'], 'it never got past connecting');
  t.ok((result.phases?.connect ?? -1) >= 0 && (result.phases?.connect ?? Infinity) <= result.durationMs + 1, 'the connect phase is part of the check');
});
