// Sessions that survive a failover (issue 19 point 2), against real PostgreSQL with trust auth:
// with sessions.survive on, an idle client connection — one node-postgres Client, no pool — goes
// on with its next statement on the new primary after a planned switchover and after a kill -9
// of the primary and a promotion (a statement sent meanwhile waits for it), with its SET and its
// prepared statement, and its cancel key reaches the new server; a session inside a
// transaction or with a query running at the crash gets an error, never a hang; a session whose
// state the tracker cannot reproduce is closed with 57P01 and the reason is logged; with survive
// off an idle session is closed with 57P01 as before.
//
// The state tracker is the test one (test/helpers/survive-tracker.ts) until the real one is
// merged; the login is trust (the test clusters trust local connections), which pgwarden
// recognises at startup (AuthenticationOk as the server's first answer).
import net from 'node:net';
import type { Client } from 'pg';
import t from 'tap';
import type { Test } from 'tap';
import type { PgCluster } from '../../src/harness/cluster';
import { cancelRequest } from '../../src/protocol/cancel';
import { startCluster } from '../helpers/cluster';
import { logLines, nextError, sigkillPostmaster, type PgError } from '../helpers/failover';
import { CHECK_USER, connect, startProxy, waitFor, waitForBackend, type ProxyOptions, type RunningProxy } from '../helpers/proxy';
import { testTracker, UNMOVABLE_MARK } from '../helpers/survive-tracker';
import { psqlSession } from '../helpers/psql-session';

const SURVIVE_ON = 'sessions:\n  survive: on';

async function switchableCluster(t: Test): Promise<PgCluster> {
  const cluster = await startCluster(t, { replicas: 1, checkUser: CHECK_USER });
  await cluster.query(cluster.primary, `GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer) TO ${CHECK_USER.name}`);
  await cluster.waitForReplication();
  return cluster;
}

async function readyProxy(t: Test, cluster: PgCluster, opts: ProxyOptions = {}): Promise<RunningProxy> {
  const p = await startProxy(t, cluster, { app: { survive: { tracker: testTracker } }, ...opts });
  await waitFor('pg1 primary and pg2 a healthy replica', () => {
    const pg2 = p.app.topology.get('pg2');
    return p.app.topology.primary()?.name === 'pg1' && pg2?.state === 'up' && pg2.role === 'replica';
  });
  return p;
}

/** A single connection through rw, watched for errors (none may come while it survives). */
async function watchedClient(t: Test, p: RunningProxy): Promise<{ client: Client; errors: PgError[]; ended: () => boolean }> {
  const client = await connect(p.rwPort);
  t.teardown(() => client.end().catch(() => undefined));
  const errors: PgError[] = [];
  let ended = false;
  client.on('error', (e: PgError) => errors.push(e));
  client.on('end', () => (ended = true));
  return { client, errors, ended: () => ended };
}

async function where(client: Client): Promise<{ port: number; inRecovery: boolean; appName: string }> {
  const r = await client.query("select inet_server_port() as port, pg_is_in_recovery() as rec, current_setting('application_name') as app");
  return { port: Number(r.rows[0].port), inRecovery: r.rows[0].rec as boolean, appName: r.rows[0].app as string };
}

/** Runs the named prepared statement (node-postgres prepares it once per connection, then only binds it). */
async function prepared(client: Client, n: number): Promise<number> {
  const r = await client.query({ name: 'plus_one', text: 'select $1::int + 1 as v', values: [n] });
  return Number(r.rows[0].v);
}

/** Resolves with the error `work` rejects with; fails the test if it resolves, or hangs past the deadline. */
async function rejectsWithin(t: Test, what: string, work: Promise<unknown>, deadlineMs = 30_000): Promise<PgError | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<'hang'>((r) => (timer = setTimeout(() => r('hang'), deadlineMs)));
  try {
    const outcome = await Promise.race([work.then(() => 'resolved' as const, (e: PgError) => e), hang]);
    if (outcome === 'hang') t.fail(`${what}: no answer within ${deadlineMs} ms (a hang)`);
    else if (outcome === 'resolved') t.fail(`${what}: succeeded, expected an error`);
    else return outcome;
  } finally {
    clearTimeout(timer);
  }
  return undefined;
}

t.test('planned switchover: idle sessions move, unmovable ones are closed with the reason', async (t) => {
  const cluster = await switchableCluster(t);
  const [pg1, pg2] = cluster.nodes;
  const p = await readyProxy(t, cluster, { extra: SURVIVE_ON });

  const mover = await watchedClient(t, p);
  await mover.client.query("SET application_name = 'survivor'");
  t.equal(await prepared(mover.client, 1), 2, 'the prepared statement runs before');
  t.same(await where(mover.client), { port: pg1!.port, inRecovery: false, appName: 'survivor' }, 'the session is on pg1');

  const psql = psqlSession(t, p.rwPort);
  await psql.query("SET application_name = 'psql-survivor'");
  t.same(await psql.query("select inet_server_port(), current_setting('application_name')"), [`${pg1!.port}|psql-survivor`], 'a psql session is on pg1');

  // A session the server itself ends (idle_session_timeout, 57P05) is not revived elsewhere: the
  // client gets the server's own FATAL.
  const timedOut = await watchedClient(t, p);
  await timedOut.client.query("SET idle_session_timeout = '300ms'");
  const timeoutError = await nextError(timedOut.client);
  t.equal(timeoutError.code, '57P05', "the server's idle_session_timeout reaches the client");
  await waitFor('session.not_moved for the idle timeout', () => logLines(p, 'session.not_moved').length === 1);
  t.match(logLines(p, 'session.not_moved'), [{ from: 'pg1', trigger: 'server-gone', reason: /57P05/ }]);

  const stuck = await watchedClient(t, p);
  await stuck.client.query(`select '${UNMOVABLE_MARK}'`);
  const stuckError = nextError(stuck.client);

  const moves: { result: string }[] = [];
  p.app.bus.on('session.moved', (m) => moves.push(m));
  const result = await p.app.switchover('pg2');
  t.match(result, { ok: true, from: 'pg1', to: 'pg2' }, 'the switchover succeeded');

  t.same(await where(mover.client), { port: pg2!.port, inRecovery: false, appName: 'survivor' }, 'the same connection runs its next statement on pg2, with its SET');
  t.equal(await prepared(mover.client, 41), 42, 'its prepared statement exists on pg2');
  t.same(mover.errors, [], 'the client saw no error');
  t.equal(mover.ended(), false, 'its connection never closed');
  t.same(await psql.query("select inet_server_port(), current_setting('application_name')"), [`${pg2!.port}|psql-survivor`], 'the psql session goes on on pg2, with its SET');
  t.equal(psql.stderr(), '', 'psql printed no error');
  await waitFor('session.moved logged', () => logLines(p, 'session.moved').length === 2);
  t.match(logLines(p, 'session.moved'), [{ from: 'pg1', to: 'pg2', trigger: 'switchover' }, { from: 'pg1', to: 'pg2', trigger: 'switchover' }]);
  t.ok(typeof logLines(p, 'session.moved')[0]!.pauseMs === 'number', 'the pause is logged');

  const e = await stuckError;
  t.equal(e.code, '57P01', 'the unmovable session got 57P01');
  t.match(logLines(p, 'session.not_moved').filter((l) => l.trigger === 'switchover'), [{ from: 'pg1', reason: 'the test marked this session unmovable' }]);

  t.same(moves.map((m) => m.result).sort(), ['moved', 'moved', 'not_moved'], 'a session.moved bus event per result (pgwarden_sessions_moved_total)');
});

t.test('kill -9 of the primary and a promotion: idle sessions move; busy ones get an error, not a hang', async (t) => {
  const cluster = await switchableCluster(t);
  const [pg1, pg2] = cluster.nodes;
  const p = await readyProxy(t, cluster, { extra: SURVIVE_ON, failover: '  queue_timeout: 60s\n  queue_size: 100\n  mode: follow' });

  const mover = await watchedClient(t, p);
  await mover.client.query("SET application_name = 'crash-survivor'");
  t.equal(await prepared(mover.client, 1), 2, 'the prepared statement runs before');
  t.same(await where(mover.client), { port: pg1!.port, inRecovery: false, appName: 'crash-survivor' }, 'the session is on pg1');
  const { processID, secretKey } = mover.client as unknown as { processID: number; secretKey: number };

  const inTx = await watchedClient(t, p);
  await inTx.client.query('BEGIN');
  await inTx.client.query('select 1');
  const busy = await watchedClient(t, p);
  const running = busy.client.query('select pg_sleep(60)');
  running.catch(() => undefined);
  await waitFor('the sleep is running on pg1', async () => Number((await cluster.query(pg1!, "select count(*) as n from pg_stat_activity where query = 'select pg_sleep(60)'"))[0].n) === 1);

  await sigkillPostmaster(cluster, pg1!);
  await waitForBackend(p, 'pg1', 'down');
  await waitFor('no session of pg1 left (the idle one is moving, the others closed)', () => p.app.sessions('pg1').length === 0);
  // No primary until the test promotes pg2 (failover.mode follow): this statement is sent while
  // the session waits in the queue, and must wait with it.
  t.equal(p.app.topology.primary(), undefined, 'no primary yet');
  const next = where(mover.client);
  await cluster.promote(pg2!);
  await waitFor('pg2 seen as the primary', () => p.app.topology.primary()?.name === 'pg2', 30_000);

  t.same(await next, { port: pg2!.port, inRecovery: false, appName: 'crash-survivor' }, 'the statement sent during the move runs on pg2, with the SET');
  t.equal(await prepared(mover.client, 41), 42, 'its prepared statement exists on pg2');
  t.same(mover.errors, [], 'the client saw no error');
  await waitFor('session.moved logged', () => logLines(p, 'session.moved').length === 1);
  // Its server connection died first, or the checks marked pg1 down first: either starts the move.
  t.match(logLines(p, 'session.moved'), [{ from: 'pg1', to: 'pg2', trigger: /^(server-gone|down)$/ }]);

  // Its cancel key, issued by pg1, now cancels on pg2.
  const sleeping = mover.client.query('select pg_sleep(60)');
  sleeping.catch(() => undefined); // inspected below
  await waitFor('the sleep is running on pg2', async () => Number((await cluster.query(pg2!, "select count(*) as n from pg_stat_activity where query = 'select pg_sleep(60)'"))[0].n) === 1);
  await new Promise<void>((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: p.rwPort }, () => s.end(cancelRequest(processID, secretKey)));
    s.on('error', () => resolve());
    s.on('close', () => resolve());
  });
  const cancelled = await rejectsWithin(t, 'the cancelled sleep', sleeping);
  t.equal(cancelled?.code, '57014', 'the CancelRequest with the old key cancelled the statement on pg2');

  const txError = await rejectsWithin(t, 'the next statement of the session that was in a transaction', inTx.client.query('select 1'));
  t.ok(txError, `the session inside a transaction gets an error (${txError?.message})`);
  const busyError = await rejectsWithin(t, 'the statement running at the crash', running);
  t.ok(busyError, `the statement running at the crash gets an error (${busyError?.message})`);
  t.match(logLines(p, 'session.not_moved').map((l) => l.reason).sort(), ['a request was in flight', 'inside a transaction']);
});

t.test('survive off: an idle session is closed with 57P01 at a switchover, as before', async (t) => {
  const cluster = await switchableCluster(t);
  const p = await readyProxy(t, cluster);
  const idle = await watchedClient(t, p);
  await idle.client.query("SET application_name = 'not-a-survivor'");
  const closed = nextError(idle.client);
  t.match(await p.app.switchover('pg2'), { ok: true, from: 'pg1', to: 'pg2' });
  t.equal((await closed).code, '57P01', 'the idle session got 57P01');
  t.same(logLines(p, 'session.moved'), [], 'nothing moved');
  t.same(logLines(p, 'session.not_moved'), [], 'and no session.not_moved line: survive is off');
});
