// Issue 19: the session state tracker against a real PostgreSQL server. Statements run on one
// session while the tracker reads its real message stream; then its replay() runs on a second,
// fresh session, and the two sessions' settings, role, prepared statements and LISTEN channels
// must be the same — the proof that a moved session would find its state again. A second test
// checks that the real server's answers (tags, errors) keep the tracker in step for what makes a
// session unmovable, and that DISCARD ALL brings it back.
import t, { type Test } from 'tap';
import { startCluster } from '../helpers/cluster';
import { TracedSession } from '../helpers/traced-session';
import { B, CLOSE, E, P, SYNC } from '../helpers/protocol-messages';
import { StateTracker } from '../../src/survive/state-tracker';

interface Snapshot {
  settings: (string | null)[][];
  who: (string | null)[][];
  prepared: (string | null)[][];
  channels: (string | null)[][];
}

async function snapshot(s: TracedSession): Promise<Snapshot> {
  const rows = async (sql: string) => {
    const r = await s.query(sql);
    if (r.errors.length > 0) throw new Error(`${sql}: ${r.errors[0]!.message}`);
    return r.rows;
  };
  return {
    settings: await rows("SELECT name, setting FROM pg_settings WHERE source = 'session' ORDER BY name"),
    who: await rows('SELECT current_user, session_user'),
    prepared: await rows('SELECT name, parameter_types::text, from_sql FROM pg_prepared_statements ORDER BY name'),
    channels: await rows('SELECT c FROM pg_listening_channels() AS c ORDER BY c'),
  };
}

/** Runs the tracker's replay on a fresh session, as the mover will; every step must succeed. */
async function replayOnFreshSession(t: Test, port: number, tracker: StateTracker): Promise<TracedSession> {
  const fresh = await TracedSession.open(port);
  t.teardown(() => fresh.close());
  for (const step of tracker.replay()) {
    const r = step.kind === 'query' ? await fresh.query(step.sql) : await fresh.send(P(step.name, step.query, step.paramTypes), SYNC);
    t.same(r.errors, [], `replay step ${step.kind === 'query' ? step.sql : `parse ${step.name}`}`);
  }
  return fresh;
}

t.test('replay on a fresh session reproduces SETs, role, prepared statements and LISTEN channels', async (t) => {
  const cluster = await startCluster(t, { replicas: 0 });
  const port = cluster.primary.port;
  const admin = await TracedSession.open(port);
  t.teardown(() => admin.close());
  t.same((await admin.query('CREATE SCHEMA app; CREATE ROLE reader; GRANT USAGE ON SCHEMA app TO reader')).errors, []);

  const tracker = new StateTracker();
  const a = await TracedSession.open(port, tracker);
  t.teardown(() => a.close());
  const ok = async (sql: string) => t.same((await a.query(sql)).errors, [], sql);
  const fails = async (sql: string) => t.not((await a.query(sql)).errors.length, 0, `${sql} fails`);

  await ok('SET ROLE reader');
  await ok('SET maintenance_work_mem = 100000; RESET ALL');
  await ok('SET search_path TO app, public');
  await ok("SET application_name = 'traced; really'; SET work_mem = '8MB'; SELECT 1");
  await ok('BEGIN; SET statement_timeout = 1234; ROLLBACK');
  await ok('BEGIN; SET lock_timeout = 777; SAVEPOINT s; SET lock_timeout = 888; ROLLBACK TO s; COMMIT');
  await fails("SET idle_in_transaction_session_timeout = 5000; SELECT 1/0");
  await fails('SET work_mem = nonsense');
  await ok("SET TIME ZONE 'Europe/Paris'; SET datestyle = iso, dmy; /* ; */ SET extra_float_digits TO 2");
  await ok('RESET extra_float_digits');
  await ok('SET search_path = "$user", app');
  await ok('LISTEN jobs; LISTEN "Mixed Case"; LISTEN other; UNLISTEN other');
  await ok('BEGIN; LISTEN rolled_back; ROLLBACK');
  await ok('PREPARE q1 (int) AS SELECT $1 + 1');
  await ok('BEGIN; PREPARE q2 AS SELECT 2; ROLLBACK');
  await ok("SELECT $tag$ SET work_mem = '1MB'; $tag$, 'LISTEN x; ' -- ; LISTEN y\n");
  t.same((await a.send(P('s_named', 'SELECT $1::text', [25]), P('gone', 'SELECT 3'), SYNC)).errors, []);
  t.same((await a.send(CLOSE('S', 'gone'), SYNC)).errors, []);
  t.not((await a.send(P('bad', 'SELEC 1'), P('skipped', 'SELECT 1'), SYNC)).errors.length, 0);
  t.same((await a.send(P('', 'SET idle_session_timeout = 600000'), B('', ''), E(), SYNC)).errors, []);

  t.same(tracker.movable(), { ok: true });
  const expected = await snapshot(a);
  t.same(tracker.movable(), { ok: true }, 'still movable after the snapshot queries');
  t.same(
    expected.settings.map((r) => r[0]).sort(),
    ['DateStyle', 'TimeZone', 'application_name', 'idle_session_timeout', 'lock_timeout', 'search_path', 'work_mem'],
    'the snapshot has the session settings to compare',
  );
  t.same(expected.who, [['reader', 'postgres']], 'RESET ALL left the role alone');
  t.same(expected.channels, [['Mixed Case'], ['jobs']]);

  const b = await replayOnFreshSession(t, port, tracker);
  const got = await snapshot(b);
  t.same(got, expected, 'the replayed session has the same state');
  t.same([...tracker.parameters()].find(([k]) => k === 'application_name'), ['application_name', 'traced; really'], 'ParameterStatus followed');
});

t.test('against a real server: what makes a session unmovable, and DISCARD ALL', async (t) => {
  const cluster = await startCluster(t, { replicas: 0 });
  const port = cluster.primary.port;
  const tracker = new StateTracker();
  const a = await TracedSession.open(port, tracker);
  t.teardown(() => a.close());
  const run = async (sql: string) => t.same((await a.query(sql)).errors, [], sql);

  await run('CREATE TEMP TABLE scratch (a int)');
  t.same(tracker.movable(), { ok: false, reason: 'a temporary table' });
  await run('DISCARD TEMP');
  t.same(tracker.movable(), { ok: true });

  await run('BEGIN; CREATE TEMP TABLE gone (a int) ON COMMIT DROP; COMMIT');
  t.same(tracker.movable(), { ok: true });

  await run('BEGIN; DECLARE c CURSOR WITH HOLD FOR SELECT 1; COMMIT');
  t.same(tracker.movable(), { ok: false, reason: 'a WITH HOLD cursor' });
  await run('CLOSE c');
  t.same(tracker.movable(), { ok: true });

  await run('BEGIN');
  t.same(tracker.movable(), { ok: false, reason: 'inside a transaction' });
  t.not((await a.query('SELECT 1/0')).errors.length, 0);
  t.same(tracker.movable(), { ok: false, reason: 'inside a failed transaction' });
  await run('COMMIT');
  t.same(tracker.movable(), { ok: true });

  await run("SET application_name = 'x'; LISTEN ch; PREPARE p AS SELECT 1");
  await run('SELECT pg_advisory_lock(7)');
  t.same(tracker.movable(), { ok: false, reason: 'a session-level advisory lock' });
  await run('DISCARD ALL');
  t.same(tracker.movable(), { ok: true });
  t.same(tracker.replay(), [], 'DISCARD ALL leaves nothing to replay');
  const locks = await a.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()");
  t.same(locks.rows, [['0']], 'and the server agrees the lock is gone');

  await run("SELECT set_config('search_path', 'app', false)");
  t.match(tracker.movable(), { ok: false, reason: /set_config/ });
});
