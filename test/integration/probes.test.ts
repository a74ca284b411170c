// The probes against real PostgreSQL servers (a primary and a streaming replica started by the
// test helper), and against ports where nothing, or something silent, listens.
import { createServer, type Socket } from 'node:net';
import t from 'tap';
import { classify } from '../../src/health/failure-classify';
import { postgresProbe, type PostgresProbeOptions } from '../../src/health/postgres-probe';
import { tcpProbe } from '../../src/health/tcp-probe';
import type { ProbeResult } from '../../src/health/types';
import { freePort } from '../../src/harness/ports';
import { startCluster } from '../helpers/cluster';

const CHECK_USER = { name: 'pgwarden', password: 'secret' };
const TIMEOUT_MS = 5000;

function probeOnce(opts: Partial<PostgresProbeOptions> & Pick<PostgresProbeOptions, 'port'>): Promise<ProbeResult> {
  const probe = postgresProbe({
    host: '127.0.0.1',
    user: CHECK_USER.name,
    password: CHECK_USER.password,
    database: 'postgres',
    timeoutMs: TIMEOUT_MS,
    ...opts,
  });
  return probe(new AbortController().signal).finally(() => probe.close?.());
}

/** Polls `condition` until it holds or the deadline passes; returns whether it held. */
async function eventually(condition: () => Promise<boolean>, deadlineMs = 10_000): Promise<boolean> {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    if (await condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return condition();
}

t.test('postgres probe against a real cluster', async (t) => {
  const cluster = await startCluster(t, { replicas: 1, checkUser: CHECK_USER });
  const primary = cluster.primary;
  const replica = cluster.replicas[0];

  await t.test('primary: role primary with the current WAL position', async (t) => {
    const result = await probeOnce({ host: primary.host, port: primary.port });
    t.match(result, { ok: true, role: 'primary' });
    if (!result.ok) return;
    t.type(result.currentLsn, 'bigint');
    t.ok((result.currentLsn ?? 0n) > 0n);
    t.equal(result.replayLsn, undefined);
    t.equal(result.replayLagSeconds, undefined);
  });

  await t.test('replica: role replica with replay position and lag >= 0', async (t) => {
    await cluster.query(primary, 'CREATE TABLE IF NOT EXISTS probe_marker (id int)');
    await cluster.query(primary, 'INSERT INTO probe_marker VALUES (1)');
    const before = await probeOnce({ host: primary.host, port: primary.port });
    await cluster.waitForReplication();
    const result = await probeOnce({ host: replica.host, port: replica.port });
    t.match(result, { ok: true, role: 'replica' });
    if (!result.ok || !before.ok) return;
    t.type(result.replayLsn, 'bigint');
    t.type(result.receiveLsn, 'bigint');
    t.ok((result.replayLsn ?? 0n) >= (before.currentLsn ?? 0n), 'replayed at least what the primary had written before');
    t.type(result.replayLagSeconds, 'number');
    t.ok((result.replayLagSeconds ?? -1) >= 0, 'lag is never negative');
    t.equal(result.currentLsn, undefined);
  });

  await t.test('wrong password: L7AUTH, and the password is not in the message', async (t) => {
    const wrong = 'n0t-the-Secret-9f3';
    const result = await probeOnce({ host: primary.host, port: primary.port, password: wrong });
    t.match(result, { ok: false, layer: 'L7AUTH' });
    if (result.ok) return;
    t.notMatch(result.message, wrong);
    t.notMatch(result.message, CHECK_USER.password);
  });

  await t.test('missing password: L7AUTH', async (t) => {
    const result = await probeOnce({ host: primary.host, port: primary.port, password: undefined });
    t.match(result, { ok: false, layer: 'L7AUTH' });
  });

  await t.test('missing database: L7QUERY with its SQLSTATE', async (t) => {
    const result = await probeOnce({ host: primary.host, port: primary.port, database: 'no_such_db' });
    t.match(result, { ok: false, layer: 'L7QUERY', message: /3D000/ });
  });

  await t.test('tcp probe: a listening server is up, with the configured role', async (t) => {
    const result = await tcpProbe(replica.host, replica.port, TIMEOUT_MS, 'replica')(new AbortController().signal);
    t.match(result, { ok: true, role: 'replica' });
  });

  await t.test('check connections are closed after every probe', async (t) => {
    await Promise.all([
      probeOnce({ host: primary.host, port: primary.port }),
      probeOnce({ host: primary.host, port: primary.port, password: 'wrong' }),
      probeOnce({ host: primary.host, port: primary.port, database: 'no_such_db' }),
    ]);
    const gone = await eventually(async () => {
      const res = await cluster.query(primary, "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'pgwarden-check'");
      return rowsOf(res)[0]?.n === 0;
    });
    t.ok(gone, 'no pgwarden-check session left in pg_stat_activity');
  });

  await t.test('the check connection is kept between checks and its loss is reported at once', async (t) => {
    const lost: string[] = [];
    const probe = postgresProbe(
      { host: primary.host, port: primary.port, user: CHECK_USER.name, password: CHECK_USER.password, database: 'postgres', timeoutMs: TIMEOUT_MS },
      { onConnectionLost: (why) => lost.push(why) },
    );
    t.teardown(() => probe.close?.());
    const pids = async () => rowsOf(await cluster.query(primary, "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgwarden-check'")).map((r) => r.pid);
    const opened = await probe(new AbortController().signal);
    t.match(opened, { ok: true });
    t.same(Object.keys(opened.phases ?? {}), ['connect', 'auth', 'query'], 'the first check connects, authenticates and queries (no TLS here)');
    const first = await pids();
    t.equal(first.length, 1, 'one check session');
    const kept = await probe(new AbortController().signal);
    t.match(kept, { ok: true });
    t.same(Object.keys(kept.phases ?? {}), ['query'], 'a check on the kept connection is its query alone');
    t.ok((kept.phases?.query ?? -1) >= 0, `query phase ${kept.phases?.query} ms`);
    const polled = await probe.poll!(new AbortController().signal);
    t.match(polled, { ok: true, role: 'primary' });
    t.equal(polled.phases, undefined, 'a role poll is not a check and carries no phases');
    t.same(await pids(), first, 'the same server process answered the second check');
    await cluster.query(primary, 'SELECT pg_terminate_backend($1)', [first[0]]);
    t.ok(await eventually(async () => lost.length === 1), 'onConnectionLost fired without waiting for a check');
    t.match(await probe(new AbortController().signal), { ok: true }, 'the next check reconnects');
    probe.close?.();
    t.ok(await eventually(async () => (await pids()).length === 0), 'close() ends the kept connection');
    t.equal(lost.length, 1, 'close() is not reported as a loss');
  });

  await t.test('stopped server: L4CON for both probes', async (t) => {
    await cluster.stop(replica, 'fast');
    const pg = await probeOnce({ host: replica.host, port: replica.port });
    t.match(pg, { ok: false, layer: 'L4CON', message: /ECONNREFUSED/ });
    const tcp = await tcpProbe(replica.host, replica.port, TIMEOUT_MS, 'replica')(new AbortController().signal);
    t.match(tcp, { ok: false, layer: 'L4CON' });
  });
});

t.test('a closed port on 127.0.0.1: L4CON', async (t) => {
  const port = await freePort();
  t.match(await probeOnce({ port }), { ok: false, layer: 'L4CON', message: /ECONNREFUSED/ });
  t.match(await tcpProbe('127.0.0.1', port, TIMEOUT_MS, 'primary')(new AbortController().signal), {
    ok: false,
    layer: 'L4CON',
  });
});

t.test('a server that accepts and never answers: L7TOUT; abort settles the probe', async (t) => {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const silent = createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    socket.resume(); // read and drop the startup packet, so the client's close is seen
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    silent.close();
  });
  const port = (silent.address() as { port: number }).port;

  const timedOut = await probeOnce({ port, timeoutMs: 300 });
  t.match(timedOut, { ok: false, layer: 'L7TOUT' }, 'connected, then no answer');

  const controller = new AbortController();
  const pending = postgresProbe({ host: '127.0.0.1', port, user: 'u', database: 'd', timeoutMs: 60_000 })(controller.signal);
  await eventually(async () => accepted === 2);
  controller.abort();
  t.match(await pending, { ok: false, layer: 'L7TOUT', message: /aborted/ });

  const closed = await eventually(async () => sockets.size === 0);
  t.ok(closed, 'the probe closed its sockets');
});

t.test('error classification for failures that are hard to provoke on demand', async (t) => {
  const server = (code: string, message: string) => Object.assign(new Error(message), { code, severity: 'FATAL' });
  const socket = (code: string) => Object.assign(new Error(`connect ${code} 10.0.0.1:5432`), { code });
  const table: Array<[unknown, Parameters<typeof classify>[1], string]> = [
    [server('57P03', 'the database system is starting up'), 'authenticating', 'L7QUERY'],
    [server('28000', 'no pg_hba.conf entry for host "10.0.0.9"'), 'authenticating', 'L7AUTH'],
    [server('57014', 'canceling statement due to statement timeout'), 'querying', 'L7TOUT'],
    [socket('ECONNRESET'), 'authenticating', 'L4CON'],
    [socket('EHOSTUNREACH'), 'connecting', 'L4CON'],
    [socket('ETIMEDOUT'), 'connecting', 'L4TOUT'],
    [new Error('timeout expired'), 'connecting', 'L4TOUT'],
    [new Error('timeout expired'), 'authenticating', 'L7TOUT'],
    [new Error('Query read timeout'), 'querying', 'L7TOUT'],
    [new Error('The server does not support SSL connections'), 'authenticating', 'L6TLS'],
    [Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }), 'authenticating', 'L6TLS'],
    [new Error('Connection terminated unexpectedly'), 'authenticating', 'L4CON'],
  ];
  for (const [err, phase, layer] of table) t.equal(classify(err, phase).layer, layer, `${(err as Error).message} while ${phase}`);
});

/** cluster.query may return a pg QueryResult or the rows themselves. */
function rowsOf(res: unknown): Array<Record<string, unknown>> {
  if (Array.isArray(res)) return res as Array<Record<string, unknown>>;
  return ((res as { rows?: Array<Record<string, unknown>> }).rows ?? []) as Array<Record<string, unknown>>;
}
