// A backup after every change of the primary (issue 12, point 4): the shipped
// backup-new-primary.sh runs as an on_primary_change hook, and the backup that appears is a
// working PostgreSQL server — on the new timeline — holding the rows written through pgwarden
// before the change. Two changes: a failover pgwarden only follows (the primary is SIGKILLed and
// the replica promoted from outside, as Patroni or an operator would) and a planned switchover.
// Each runs on_primary_change exactly once; the first primary found at startup runs nothing.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t, { type Test } from 'tap';
import { completeBackups, queryPort, startFromBackup } from '../helpers/backup';
import { startCluster } from '../helpers/cluster';
import { CHECK_USER, connect, startProxy, waitFor, whoAnswers, type RunningProxy } from '../helpers/proxy';
import type { PgCluster } from '../../src/harness/cluster';

const SCRIPT = resolve(__dirname, '../../config/hooks/backup-new-primary.sh');
const ROWS = 1000;

interface HookRun {
  event: string;
  command: string;
  outcome: string;
  exitCode?: number;
}

/** pg1 primary, pg2 its replica, pgwarden in front with backup-new-primary.sh on on_primary_change. */
async function setup(t: Test, extraHooks = ''): Promise<{ cluster: PgCluster; p: RunningProxy; work: string; backupDir: string; hookRuns: HookRun[] }> {
  const work = mkdtempSync(join(tmpdir(), 'pgwarden-backup-failover-'));
  // Registered first, so it runs last (teardowns run newest first): after the restored server stopped.
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  const backupDir = join(work, 'backups');
  const cluster = await startCluster(t, { replicas: 1, checkUser: CHECK_USER });
  await cluster.query(cluster.primary, `GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer) TO ${CHECK_USER.name}`);
  const p = await startProxy(t, cluster, {
    failover: '  queue_timeout: 30s\n  mode: follow',
    extra: `hooks:
  on_primary_change:
    - command: [sh, -c, 'echo "old=$PGWARDEN_OLD_PRIMARY_NAME:$PGWARDEN_OLD_PRIMARY_PORT new=$PGWARDEN_NEW_PRIMARY_NAME:$PGWARDEN_NEW_PRIMARY_PORT"']
    - command: [${JSON.stringify(SCRIPT)}]
      timeout: 2m
      env: { BACKUP_DIR: ${JSON.stringify(backupDir)}, KEEP: "2", PGUSER: postgres }
${extraHooks}`,
  });
  const hookRuns: HookRun[] = [];
  p.app.bus.on('hook.run', (h) => hookRuns.push(h));
  await waitFor('pg1 primary and pg2 a healthy replica', () => {
    const pg2 = p.app.topology.get('pg2');
    return p.app.topology.primary()?.name === 'pg1' && pg2?.state === 'up' && pg2.role === 'replica';
  });

  // Rows written through pgwarden, on the old primary.
  const writer = await connect(p.rwPort);
  try {
    await writer.query('CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL)');
    await writer.query(`INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, ${ROWS}) g`);
  } finally {
    await writer.end();
  }
  return { cluster, p, work, backupDir, hookRuns };
}

/**
 * Waits for the backup hook, then stops pgwarden: stopping waits for every queued hook run, and
 * a run still queued reports its outcome too, so the count below is final.
 */
async function onPrimaryChangeRuns(t: Test, p: RunningProxy, hookRuns: HookRun[]): Promise<HookRun[]> {
  await waitFor('the on_primary_change backup hook has finished', () => hookRuns.some((h) => h.event === 'on_primary_change' && h.command === SCRIPT), 120_000);
  await p.app.stop(0);
  const runs = hookRuns.filter((h) => h.event === 'on_primary_change');
  t.same(
    runs.map((h) => [h.command, h.outcome]),
    [
      ['sh', 'ok'],
      [SCRIPT, 'ok'],
    ],
    'on_primary_change ran exactly once (its two hooks, both ok)',
    { output: p.logs.filter((l) => l.event === 'hook.output').map((l) => `${l.stream}: ${l.line}`) },
  );
  return runs;
}

/** The hooks saw pg1 → pg2, the backup is of pg2, and it restores to the rows on the new timeline. */
async function assertBackupOfPg2(t: Test, cluster: PgCluster, p: RunningProxy, backupDir: string, work: string): Promise<void> {
  const output = p.logs.filter((l) => l.event === 'hook.output' && l.hook === 'on_primary_change').map((l) => `${l.stream}: ${l.line}`);
  const [pg1, pg2] = cluster.nodes;
  t.ok(output.includes(`stdout: old=pg1:${pg1!.port} new=pg2:${pg2!.port}`), 'the hook environment names the old and the new primary', { output });
  t.ok(output.some((l) => /backing up pg2 \(127\.0\.0\.1:\d+\)/.test(l)), 'it backed up the new primary pg2', { output });
  t.ok(p.app.status().events.some((e) => e.event === 'hook.run' && /on_primary_change hook .*backup-new-primary\.sh succeeded/.test(e.message)), 'the timeline reports the hook run');
  const backups = completeBackups(backupDir);
  t.equal(backups.length, 1, `one complete backup directory: ${backups.join(', ')}`);

  const restored = await startFromBackup(t, join(backupDir, backups[0]!), work);
  const [rows] = await queryPort<{ n: number; last: string }>(restored.port, `SELECT count(*)::int AS n, max(item) FILTER (WHERE id = ${ROWS}) AS last FROM orders`);
  t.same(rows, { n: ROWS, last: `item ${ROWS}` }, 'the restored server has every row written before the change');
  const [state] = await queryPort<{ recovery: boolean; timeline: number }>(restored.port, 'SELECT pg_is_in_recovery() AS recovery, timeline_id AS timeline FROM pg_control_checkpoint()');
  t.equal(state?.recovery, false, 'it runs as a standalone primary');
  t.ok((state?.timeline ?? 0) >= 2, `it is on the new primary's timeline (${state?.timeline}), not the old one`);
}

t.test('follow mode: the primary is killed, pg2 promoted from outside; on_primary_change backs up pg2 once', async (t) => {
  const { cluster, p, work, backupDir, hookRuns } = await setup(t);
  const [pg1, pg2] = cluster.nodes;
  t.same(hookRuns, [], 'finding pg1 at startup ran no hook');
  // Asynchronous replication: the rows must have reached pg2 before pg1 dies.
  await cluster.waitForReplication();

  await cluster.kill9(pg1!);
  await waitFor('pgwarden sees no primary', () => p.app.topology.primary() === undefined);
  await cluster.promote(pg2!); // pg_ctl promote: nothing in pgwarden asks for it
  await waitFor('pgwarden follows pg2 as the primary', () => p.app.topology.primary()?.name === 'pg2');
  t.same(await whoAnswers(p.rwPort), { port: pg2!.port, inRecovery: false }, 'rw now reaches pg2, out of recovery');

  await onPrimaryChangeRuns(t, p, hookRuns);
  t.notOk(hookRuns.some((h) => h.event === 'post_switchover' || h.event === 'on_promote'), 'a followed failover runs neither post_switchover nor on_promote');
  await assertBackupOfPg2(t, cluster, p, backupDir, work);
});

t.test('planned switchover: on_primary_change backs up pg2 once, post_switchover runs too', async (t) => {
  const { cluster, p, work, backupDir, hookRuns } = await setup(t, `  post_switchover:
    - command: [sh, -c, 'exit 0']`);
  const result = await p.app.switchover('pg2');
  t.match(result, { ok: true, from: 'pg1', to: 'pg2' }, 'the switchover succeeded');
  t.same(await whoAnswers(p.rwPort), { port: cluster.nodes[1]!.port, inRecovery: false }, 'rw now reaches pg2, out of recovery');

  await onPrimaryChangeRuns(t, p, hookRuns);
  t.same(hookRuns.filter((h) => h.event === 'post_switchover').map((h) => h.outcome), ['ok'], 'post_switchover ran once');
  await assertBackupOfPg2(t, cluster, p, backupDir, work);
});
