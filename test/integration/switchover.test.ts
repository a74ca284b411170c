// Planned switchover (issue "Failover", item 6) against real PostgreSQL: a pgbench load that
// reconnects for every transaction sees no failed transaction across it; idle sessions are
// closed at a transaction boundary with a FATAL that says why; a session inside a transaction
// is left alone until drain_timeout and only then cut (counted and reported); a
// pre_switchover hook can veto; only a healthy replica can be the target.
//
// Every scenario that switches gets a cluster of its own: the old primary stays a primary on
// the old timeline (fenced), and making it a replica again is pg_rewind's job, not this test's.
import type { Client } from 'pg';
import t from 'tap';
import type { Test } from 'tap';
import type { SwitchoverResult } from '../../src/admin/controller';
import type { PgCluster } from '../../src/harness/cluster';
import { freePort } from '../../src/harness/ports';
import { startCluster } from '../helpers/cluster';
import { pgbench } from '../helpers/pgbench';
import { CHECK_USER, connect, startProxy, waitFor, whoAnswers, type ProxyOptions, type RunningProxy } from '../helpers/proxy';

interface DbError extends Error {
  code?: string;
  severity?: string;
}

/** One primary and one replica; the check user may run pg_promote() (replicated to pg2). */
async function switchableCluster(t: Test): Promise<PgCluster> {
  const cluster = await startCluster(t, { replicas: 1, checkUser: CHECK_USER });
  await cluster.query(cluster.primary, `GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer) TO ${CHECK_USER.name}`);
  return cluster;
}

/** The proxy in front of `cluster`, once it sees pg1 as the primary and pg2 as a healthy replica. */
async function readyProxy(t: Test, cluster: PgCluster, opts: ProxyOptions = {}): Promise<RunningProxy> {
  const p = await startProxy(t, cluster, opts);
  await waitFor('pg1 primary and pg2 a healthy replica', () => {
    const pg2 = p.app.topology.get('pg2');
    return p.app.topology.primary()?.name === 'pg1' && pg2?.state === 'up' && pg2.role === 'replica';
  });
  return p;
}

async function inRecovery(cluster: PgCluster, node: 'pg1' | 'pg2'): Promise<boolean> {
  const [row] = await cluster.query(cluster.nodes.find((n) => n.name === node)!, 'SELECT pg_is_in_recovery() AS r');
  return row.r as boolean;
}

/** After a switchover pg1 → pg2: writes go to pg2 only, pg1 is a fenced primary on the old timeline. */
async function assertSwitched(t: Test, cluster: PgCluster, p: RunningProxy): Promise<void> {
  const pg1 = p.app.topology.get('pg1')!;
  const pg2 = p.app.topology.get('pg2')!;
  t.equal(p.app.topology.primary()?.name, 'pg2', 'the proxy routes writes to pg2');
  t.equal(await inRecovery(cluster, 'pg2'), false, 'pg2 is out of recovery');
  for (let i = 0; i < 3; i++) t.same(await whoAnswers(p.rwPort), { port: cluster.nodes[1]!.port, inRecovery: false }, `rw session ${i + 1} lands on pg2`);
  t.equal(await inRecovery(cluster, 'pg1'), false, 'pg1 is still a primary (nothing rewound it)');
  t.ok(pg1.fenced, 'pg1 is fenced');
  t.ok((pg1.timeline ?? 0) < (pg2.timeline ?? 0), `pg1 is on an older timeline (${pg1.timeline}) than pg2 (${pg2.timeline})`);
  t.equal(p.app.sessions('pg1').length, 0, 'pg1 has no sessions through the proxy');
}

function eventsOf(p: RunningProxy, name: string) {
  return p.app.status().events.filter((e) => e.event === name);
}

t.test('pgbench (a new connection per transaction) runs across a switchover without a failed transaction', async (t) => {
  const cluster = await switchableCluster(t);
  const p = await readyProxy(t, cluster);
  const init = await pgbench(p.rwPort, ['-i', '-s', '1', '-q']);
  t.equal(init.code, 0, 'pgbench -i through rw', { output: init.output });

  const started = Date.now();
  // One thread per client (-j 8), like a pool whose connections are independent. With fewer
  // threads than clients pgbench connects blocking (-C: PQconnectdb inside the thread's loop),
  // so a thread whose next connect is held for the switchover stops reading the results of its
  // other clients, whose open transactions on the old primary then never end: the drain can
  // only cut them at drain_timeout. That is the client deadlocking itself, not a failover.
  const run = pgbench(p.rwPort, ['-C', '-c', '8', '-j', '8', '-T', '30', '-n']);
  // Under load for a while first: at least 8 s, and transactions are being committed.
  await waitFor(
    'pgbench running for 8 s with committed transactions',
    async () => Date.now() - started >= 8000 && Number((await cluster.query(cluster.primary, 'SELECT count(*) AS n FROM pgbench_history'))[0].n) > 100,
    25_000,
  );
  const result = await p.app.switchover('pg2');
  t.comment(`switchover: ${JSON.stringify(result)}`);
  t.match(result, { ok: true, from: 'pg1', to: 'pg2' }, 'the switchover succeeded');

  const { code, output } = await run;
  for (const line of output.split('\n').filter((l) => /^(tps|latency|number of|initial connection)/.test(l))) t.comment(`pgbench: ${line}`);
  if (code !== 0) {
    const interesting = p.logs.filter((l) => /session\.(error|rejected)|switchover|fenced|primary|backend\./.test(String(l.event)));
    t.comment(`proxy log:\n${interesting.map((l) => `${l.time} ${l.event} ${l.msg}`).join('\n')}`);
  }
  t.equal(code, 0, 'pgbench exits 0');
  t.notMatch(output, /aborted/, 'no client aborted', { output });
  const failed = /number of failed transactions: (\d+)/.exec(output);
  if (failed) t.equal(Number(failed[1]), 0, 'pgbench reports 0 failed transactions');
  const processed = /number of transactions actually processed: (\d+)/.exec(output);
  t.ok(processed && Number(processed[1]) > 0, 'pgbench processed transactions');

  await assertSwitched(t, cluster, p);
  const [{ n }] = await cluster.query(cluster.nodes[1]!, 'SELECT count(*) AS n FROM pgbench_history');
  t.equal(Number(n), Number(processed?.[1]), 'every transaction pgbench counted is on the new primary');
  t.ok(eventsOf(p, 'switchover.done').length === 1, 'the timeline reports the switchover');
});

t.test('an idle session is closed at a transaction boundary with a FATAL 57P01 naming the switchover', async (t) => {
  const cluster = await switchableCluster(t);
  const p = await readyProxy(t, cluster);
  const idle: { client: Client; errors: DbError[]; reconnected?: Promise<{ port: number; inRecovery: boolean }> }[] = [];
  for (let i = 0; i < 3; i++) {
    const client = await connect(p.rwPort);
    t.teardown(() => client.end().catch(() => undefined));
    t.equal((await client.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, false, `idle client ${i + 1} is on the primary`);
    const entry: (typeof idle)[number] = { client, errors: [] };
    // Like a pool: reconnect the moment the server says the connection is gone.
    client.on('error', (e: DbError) => {
      entry.errors.push(e);
      entry.reconnected ??= whoAnswers(p.rwPort);
    });
    idle.push(entry);
  }

  const result = await p.app.switchover('pg2');
  t.match(result, { ok: true, from: 'pg1', to: 'pg2', closedInTransaction: 0 }, 'the switchover succeeded');
  t.ok((result.closedIdle ?? 0) >= idle.length, `every idle session was closed idle (${result.closedIdle})`);

  for (const [i, s] of idle.entries()) {
    await waitFor(`idle client ${i + 1} got the FATAL`, () => s.errors.length > 0, 5000);
    const e = s.errors[0]!;
    t.equal(e.code, '57P01', `client ${i + 1}: SQLSTATE 57P01 admin_shutdown`);
    t.equal(e.severity, 'FATAL', `client ${i + 1}: severity FATAL`);
    t.match(e.message, /switchover/, `client ${i + 1}: the message says why: ${e.message}`);
    t.same(await s.reconnected, { port: cluster.nodes[1]!.port, inRecovery: false }, `client ${i + 1}: its immediate reconnect reaches the new primary`);
  }
  await assertSwitched(t, cluster, p);
});

t.test('a session inside a transaction is cut only at drain_timeout, counted and reported', async (t) => {
  const cluster = await switchableCluster(t);
  await cluster.query(cluster.primary, 'CREATE TABLE drained (id int)');
  // client_login_timeout shorter than the drain: a new session held in the queue during the
  // switchover must wait for the new primary, not be dropped for a late startup packet.
  // drain_timeout leaves the checks made during the drain (a query, four assertions) seconds to
  // run before the cut, even on a loaded machine.
  const p = await readyProxy(t, cluster, { failover: '  queue_timeout: 30s\n  drain_timeout: 5s', extra: 'proxy:\n  client_login_timeout: 1s' });
  const closedByProxy: { reason: string; inTransaction: boolean }[] = [];
  p.app.bus.on('session.closed_by_proxy', (e) => closedByProxy.push(e));

  const busy = await connect(p.rwPort);
  t.teardown(() => busy.end().catch(() => undefined));
  const errors: DbError[] = [];
  busy.on('error', (e: DbError) => errors.push(e));
  await busy.query('BEGIN');
  await busy.query('INSERT INTO drained VALUES (1)');
  // Idle in transaction from here on.

  let result: SwitchoverResult | undefined;
  const switching = p.app.switchover('pg2').then((r) => (result = r));
  await waitFor('the drain has begun', () => eventsOf(p, 'switchover.progress').some((e) => /draining/.test(e.message)));
  // Under drain_timeout the transaction is not cut: it still works.
  const seen = await busy.query('SELECT count(*)::int AS n FROM drained');
  t.equal(seen.rows[0].n, 1, 'during the drain the open transaction still works (sees its own insert)');
  t.equal(result, undefined, 'the switchover is still waiting for it');
  t.equal(errors.length, 0, 'it has not been closed');
  t.equal(p.app.sessions('pg1').length, 1, 'it is still on pg1');
  // A new session now is held (pg1 takes none) and served by the new primary.
  const held = whoAnswers(p.rwPort).then(
    (r) => ({ ok: true as const, ...r }),
    (e: Error) => ({ ok: false as const, error: e.message }),
  );

  await switching;
  t.match(result, { ok: true, from: 'pg1', to: 'pg2' }, 'the switchover succeeded');
  t.ok((result?.closedInTransaction ?? 0) >= 1, `it was counted as cut in a transaction (${result?.closedInTransaction})`);
  t.comment(`switchover took ${result?.durationMs} ms with drain_timeout 5s`);

  await waitFor('the busy client got the FATAL', () => errors.length > 0, 5000);
  t.equal(errors[0]!.code, '57P01', 'SQLSTATE 57P01');
  t.match(errors[0]!.message, /switchover.*drain_timeout/, `the message says why: ${errors[0]!.message}`);
  t.ok(closedByProxy.some((e) => e.reason === 'switchover' && e.inTransaction), 'the bus reports a session closed in a transaction by the switchover');
  const events = p.app.status().events;
  t.ok(events.some((e) => e.event === 'switchover.progress' && /still busy at drain_timeout/.test(e.message)), 'the timeline reports the sessions cut at drain_timeout');
  t.ok(events.some((e) => e.event === 'switchover.done' && /[1-9]\d* cut at drain_timeout/.test(e.message)), 'the switchover.done event counts them');

  // client_login_timeout is 1 s here: a held session is governed by queue_timeout, not by it.
  t.same(await held, { ok: true, port: cluster.nodes[1]!.port, inRecovery: false }, 'a session opened during the drain waited and reached the new primary');
  const [{ n }] = await cluster.query(cluster.nodes[1]!, 'SELECT count(*)::int AS n FROM drained');
  t.equal(n, 0, 'the cut transaction was rolled back, not half-applied on the new primary');
  await assertSwitched(t, cluster, p);
});

t.test('refused switchovers change nothing', async (t) => {
  const cluster = await switchableCluster(t);
  const deadPort = await freePort();
  const p = await readyProxy(t, cluster, {
    backends: (nodes) => [...nodes.map((n) => `  - { name: ${n.name}, host: 127.0.0.1, port: ${n.port} }`), `  - { name: pg9, host: 127.0.0.1, port: ${deadPort} }`].join('\n'),
    extra: `hooks:\n  pre_switchover:\n    - command: [sh, -c, 'echo no >&2; exit 3']`,
  });
  await waitFor('pg9 down', () => p.app.topology.get('pg9')?.state === 'down');

  const unchanged = async (what: string) => {
    t.equal(p.app.topology.primary()?.name, 'pg1', `${what}: pg1 is still the primary`);
    t.equal(p.app.topology.get('pg1')?.adminState, 'ready', `${what}: pg1 takes new sessions`);
    t.equal(await inRecovery(cluster, 'pg2'), true, `${what}: pg2 is still a replica`);
    t.same(await whoAnswers(p.rwPort), { port: cluster.primary.port, inRecovery: false }, `${what}: rw still reaches pg1`);
  };

  await t.test('a pre_switchover hook vetoes', async (t) => {
    const r = await p.app.switchover('pg2');
    t.equal(r.ok, false, 'not ok');
    t.match(r.error, /vetoed by a pre_switchover hook.*exit code 3.*no/s, `the reason names the hook and its stderr: ${r.error}`);
    t.ok(eventsOf(p, 'switchover.failed').some((e) => /vetoed/.test(e.message)), 'the timeline reports the refusal');
    await unchanged('after the veto');
  });

  await t.test('the target must be a healthy replica', async (t) => {
    const down = await p.app.switchover('pg9');
    t.equal(down.ok, false, 'a backend that is down: not ok');
    t.match(down.error, /pg9 is not a healthy replica \(state down/, `reason: ${down.error}`);

    const self = await p.app.switchover('pg1');
    t.equal(self.ok, false, 'the primary itself: not ok');
    t.match(self.error, /pg1 is already the primary/, `reason: ${self.error}`);

    p.app.setAdminState('pg2', 'drain');
    const draining = await p.app.switchover('pg2');
    p.app.setAdminState('pg2', 'ready');
    t.equal(draining.ok, false, 'a replica in drain: not ok');
    t.match(draining.error, /pg2 is drain/, `reason: ${draining.error}`);

    await t.rejects(p.app.switchover('nope'), { code: 'PGW_UNKNOWN_BACKEND' }, 'an unknown name is an UnknownBackendError');
    await unchanged('after the refusals');
  });
});
