// Issue 19 as a user runs it: auth.mode proxy with a SCRAM user, sessions.survive on, the real
// state tracker. Idle node-postgres connections keep working across a planned switchover and
// across a kill -9 of the primary followed by a promote: their next statement runs on the new
// primary with their search_path, application_name and named prepared statement, and they see no
// error. A session inside a transaction at the crash gets an error, not a hang; a session with a
// temporary table is closed (57P01) with the reason in a session.not_moved line. A pg.Pool, as an
// application holds it, sees no error at all: every pooled connection is the same connection on
// the new primary afterwards, with its own application_name, even with a worker busy through a
// switchover.
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Pool, type PoolClient } from 'pg';
import t, { type Test } from 'tap';
import { AUTH_YAML, SCRAM, authCluster } from '../helpers/auth-cluster';
import { logLines, sigkillPostmaster, type PgError } from '../helpers/failover';
import { CHECK_USER, startProxy, waitFor, type RunningProxy } from '../helpers/proxy';
import type { PgCluster } from '../../src/harness/cluster';

const SURVIVE = `${AUTH_YAML}sessions:\n  survive: on\n`;

async function cluster2(t: Test): Promise<PgCluster> {
  const cluster = await authCluster(t, 1);
  await cluster.query(cluster.primary, `GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer) TO ${CHECK_USER.name}`);
  await cluster.query(cluster.primary, `CREATE SCHEMA app AUTHORIZATION ${SCRAM.user}`);
  await cluster.waitForReplication();
  return cluster;
}

async function ready(p: RunningProxy): Promise<void> {
  await waitFor('pg1 primary and pg2 a healthy replica', () => {
    const pg2 = p.app.topology.get('pg2');
    return p.app.topology.primary()?.name === 'pg1' && pg2?.state === 'up' && pg2.role === 'replica';
  });
}

/** A SCRAM user's single connection through rw with state to carry: search_path, application_name, a prepared statement. */
async function statefulClient(t: Test, port: number, name: string): Promise<{ client: Client; errors: PgError[]; ended: () => boolean }> {
  const client = new Client({ host: '127.0.0.1', port, user: SCRAM.user, password: SCRAM.password, database: 'postgres', connectionTimeoutMillis: 30_000 });
  const errors: PgError[] = [];
  let ended = false;
  client.on('error', (e: PgError) => errors.push(e));
  client.on('end', () => (ended = true));
  await client.connect();
  t.teardown(() => client.end().catch(() => undefined));
  await client.query('SET search_path TO app, public');
  await client.query(`SET application_name = '${name}'`);
  t.equal(await twice(client, 4), 8, `${name}: the prepared statement runs before the change`);
  return { client, errors, ended: () => ended };
}

async function twice(client: Client, n: number): Promise<number> {
  return Number((await client.query({ name: 'twice', text: 'select $1::int * 2 as v', values: [n] })).rows[0].v);
}

async function where(client: Client): Promise<{ port: number; primary: boolean; searchPath: string; app: string; user: string }> {
  const r = await client.query("select inet_server_port() as port, not pg_is_in_recovery() as primary, current_setting('search_path') as sp, current_setting('application_name') as app, current_user as u");
  const row = r.rows[0];
  return { port: Number(row.port), primary: row.primary as boolean, searchPath: row.sp as string, app: row.app as string, user: row.u as string };
}

t.test('planned switchover: SCRAM sessions move with their state; a temp table session is closed with the reason', async (t) => {
  const cluster = await cluster2(t);
  const [, pg2] = cluster.nodes;
  const p = await startProxy(t, cluster, { extra: SURVIVE });
  await ready(p);
  const a = await statefulClient(t, p.rwPort, 'survivor-a');
  const b = await statefulClient(t, p.rwPort, 'survivor-b');
  const temp = await statefulClient(t, p.rwPort, 'has-temp');
  await temp.client.query('CREATE TEMP TABLE scratch (x int)');

  const result = await p.app.switchover('pg2');
  t.match(result, { ok: true, from: 'pg1', to: 'pg2' }, 'the switchover succeeded');
  for (const [name, s] of [['survivor-a', a], ['survivor-b', b]] as const) {
    t.same(await where(s.client), { port: pg2!.port, primary: true, searchPath: 'app, public', app: name, user: SCRAM.user }, `${name}: the next statement runs on pg2 as ${SCRAM.user}, with its SETs`);
    t.equal(await twice(s.client, 21), 42, `${name}: its prepared statement exists on pg2`);
    t.same(s.errors, [], `${name}: the client saw no error`);
    t.equal(s.ended(), false, `${name}: its connection never closed`);
  }
  await waitFor('the temp-table session is closed', () => temp.ended());
  t.match(temp.errors, [{ code: '57P01' }], 'the session with a temporary table got 57P01');
  t.match(logLines(p, 'session.not_moved'), [{ from: 'pg1', trigger: 'switchover', reason: /temporary/ }], 'and a session.not_moved line says why');
  await waitFor('two session.moved lines', () => logLines(p, 'session.moved').length === 2);
});

t.test('kill -9 of the primary, then a promote: idle SCRAM sessions go on on the new primary; one in a transaction gets an error', async (t) => {
  const cluster = await cluster2(t);
  const [pg1, pg2] = cluster.nodes;
  const p = await startProxy(t, cluster, { extra: SURVIVE, failover: '  mode: follow\n  queue_timeout: 60s' });
  await ready(p);
  const idle = await statefulClient(t, p.rwPort, 'idle-at-crash');
  const busy = await statefulClient(t, p.rwPort, 'in-transaction');
  await busy.client.query('BEGIN');
  await busy.client.query('select 1');

  await sigkillPostmaster(cluster, pg1!);
  await cluster.promote(pg2!);
  // The idle client's next statement waits for the move (and the promotion) and then runs.
  t.same(await where(idle.client), { port: pg2!.port, primary: true, searchPath: 'app, public', app: 'idle-at-crash', user: SCRAM.user }, 'the idle session runs on pg2 with its SETs');
  t.equal(await twice(idle.client, 50), 100, 'its prepared statement exists on pg2');
  t.same(idle.errors, [], 'the idle client saw no error');

  const err = await busy.client.query('select 2').then(
    () => undefined,
    (e: PgError) => e,
  );
  t.ok(err, `the session inside a transaction at the crash got an error, not a hang (${err?.code ?? ''} ${err?.message ?? ''})`);
  await waitFor('its session.not_moved line', () => logLines(p, 'session.not_moved').some((l) => /transaction/.test(String(l.reason))));
});

/** A pg.Pool of `size` SCRAM connections, each named by its own `SET application_name`, all idle in the pool. */
async function warmPool(t: Test, port: number, size: number): Promise<{ pool: Pool; names: string[]; errors: PgError[] }> {
  const pool = new Pool({ host: '127.0.0.1', port, user: SCRAM.user, password: SCRAM.password, database: 'postgres', max: size, idleTimeoutMillis: 0, connectionTimeoutMillis: 30_000 });
  const errors: PgError[] = [];
  pool.on('error', (e: PgError) => errors.push(e));
  t.teardown(() => pool.end().catch(() => undefined));
  const names = await withEveryConnection(pool, size, async (c, i) => {
    await c.query(`SET application_name = 'pooled-${i}'`);
    await c.query('SET search_path TO app, public');
    return `pooled-${i}`;
  });
  return { pool, names, errors };
}

/** Takes all `size` connections out of the pool at once (so each is a distinct one), runs `fn` on each, gives them back. */
async function withEveryConnection<T>(pool: Pool, size: number, fn: (c: PoolClient, i: number) => Promise<T>): Promise<T[]> {
  const clients = await Promise.all(Array.from({ length: size }, () => pool.connect()));
  try {
    return await Promise.all(clients.map((c, i) => fn(c, i)));
  } finally {
    for (const c of clients) c.release();
  }
}

/** A worker taking a connection from the pool for one statement (an insert or a count, in turn) every few ms. */
function poolWorker(t: Test, pool: Pool): { statements: () => number; stop: () => Promise<{ inserted: number; statements: number; errors: PgError[] }> } {
  let running = true;
  let inserted = 0;
  let statements = 0;
  const errors: PgError[] = [];
  // A failed assertion before stop() must not leave the loop spinning on a closed pool.
  t.teardown(() => {
    running = false;
  });
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const insert = i % 2 === 0;
      await pool.query(insert ? 'INSERT INTO app.work DEFAULT VALUES' : 'SELECT count(*) FROM app.work').then(
        () => {
          statements++;
          if (insert) inserted++;
        },
        (e: PgError) => errors.push(e),
      );
      await sleep(5);
    }
  })();
  return {
    statements: () => statements,
    stop: async () => {
      running = false;
      await loop;
      return { inserted, statements, errors };
    },
  };
}

const POOL_SIZE = 8;

t.test('a pg.Pool through a planned switchover with a busy worker: no error anywhere, every connection now on pg2', async (t) => {
  const cluster = await cluster2(t);
  const [, pg2] = cluster.nodes;
  await cluster.query(cluster.primary, `CREATE TABLE app.work (id bigserial PRIMARY KEY); ALTER TABLE app.work OWNER TO ${SCRAM.user}`);
  const p = await startProxy(t, cluster, { extra: SURVIVE });
  await ready(p);
  const { pool, names, errors } = await warmPool(t, p.rwPort, POOL_SIZE);
  const worker = poolWorker(t, pool);
  await waitFor('the worker has run statements', () => worker.statements() >= 10);

  const result = await p.app.switchover('pg2');
  t.match(result, { ok: true, from: 'pg1', to: 'pg2' }, 'the switchover succeeded');
  const since = worker.statements();
  await waitFor('the worker runs on after the switchover', () => worker.statements() >= since + 10);
  const after = await worker.stop();
  t.same(after.errors, [], 'the worker saw no error through the switchover');
  t.same(errors, [], 'the pool saw no error event on an idle connection');
  const seen = await withEveryConnection(pool, POOL_SIZE, (c) => where(c));
  t.same(seen.map((s) => s.app).sort(), [...names].sort(), 'the pool still holds the same connections (each its own application_name)');
  t.ok(seen.every((s) => s.port === pg2!.port && s.primary && s.searchPath === 'app, public'), 'every one answers from pg2, the primary, with its search_path');
  const rows = Number((await pool.query('SELECT count(*) AS n FROM app.work')).rows[0].n);
  t.ok(rows >= after.inserted, `every acknowledged insert is on pg2 (${rows} rows, ${after.inserted} acknowledged)`);
});

t.test('a pg.Pool idle at a kill -9 of the primary and a promote: no error, every connection now on pg2', async (t) => {
  const cluster = await cluster2(t);
  const [pg1, pg2] = cluster.nodes;
  const p = await startProxy(t, cluster, { extra: SURVIVE, failover: '  mode: follow\n  queue_timeout: 60s' });
  await ready(p);
  const { pool, names, errors } = await warmPool(t, p.rwPort, POOL_SIZE);

  await sigkillPostmaster(cluster, pg1!);
  await cluster.promote(pg2!);
  const seen = await withEveryConnection(pool, POOL_SIZE, (c) => where(c));
  t.same(seen.map((s) => s.app).sort(), [...names].sort(), 'the pool still holds the same connections (each its own application_name)');
  t.ok(seen.every((s) => s.port === pg2!.port && s.primary && s.searchPath === 'app, public'), 'every one answers from pg2, the primary, with its search_path');
  t.same(errors, [], 'the pool saw no error event');
  await waitFor(`${POOL_SIZE} session.moved lines`, () => logLines(p, 'session.moved').length === POOL_SIZE);
});
