// Issue 19 as a user runs it: auth.mode proxy with a SCRAM user, sessions.survive on, the real
// state tracker. Idle node-postgres connections keep working across a planned switchover and
// across a kill -9 of the primary followed by a promote: their next statement runs on the new
// primary with their search_path, application_name and named prepared statement, and they see no
// error. A session inside a transaction at the crash gets an error, not a hang; a session with a
// temporary table is closed (57P01) with the reason in a session.not_moved line.
import { Client } from 'pg';
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
