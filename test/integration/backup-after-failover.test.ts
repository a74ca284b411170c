// A backup after a real failover (issue "Failover", item 8): pgwarden switches the primary over
// to the replica, runs the shipped backup-new-primary.sh as its post_switchover hook, and the
// backup that appears is a working PostgreSQL server — on the new timeline — holding the rows
// written through pgwarden before the failover.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import { completeBackups, queryPort, startFromBackup } from '../helpers/backup';
import { startCluster } from '../helpers/cluster';
import { CHECK_USER, connect, startProxy, waitFor, whoAnswers } from '../helpers/proxy';

const SCRIPT = resolve(__dirname, '../../config/hooks/backup-new-primary.sh');
const ROWS = 1000;

t.test('post_switchover backup-new-primary.sh: the backup of the new primary restores the rows written before', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'pgwarden-backup-failover-'));
  // Registered first, so it runs last (teardowns run newest first): after the restored server stopped.
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  const backupDir = join(work, 'backups');

  const cluster = await startCluster(t, { replicas: 1, checkUser: CHECK_USER });
  await cluster.query(cluster.primary, `GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer) TO ${CHECK_USER.name}`);
  const p = await startProxy(t, cluster, {
    extra: `hooks:
  post_switchover:
    - command: [${JSON.stringify(SCRIPT)}]
      timeout: 2m
      env: { BACKUP_DIR: ${JSON.stringify(backupDir)}, KEEP: "2", PGUSER: postgres }`,
  });
  await waitFor('pg1 primary and pg2 a healthy replica', () => {
    const pg2 = p.app.topology.get('pg2');
    return p.app.topology.primary()?.name === 'pg1' && pg2?.state === 'up' && pg2.role === 'replica';
  });
  const hookRuns: { event: string; outcome: string; exitCode?: number }[] = [];
  p.app.bus.on('hook.run', (h) => hookRuns.push(h));

  // Rows written through pgwarden, on the old primary.
  const writer = await connect(p.rwPort);
  try {
    await writer.query('CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL)');
    await writer.query(`INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, ${ROWS}) g`);
  } finally {
    await writer.end();
  }

  const result = await p.app.switchover('pg2');
  t.match(result, { ok: true, from: 'pg1', to: 'pg2' }, 'the switchover succeeded');
  t.same(await whoAnswers(p.rwPort), { port: cluster.nodes[1]!.port, inRecovery: false }, 'rw now reaches pg2, out of recovery');

  // The hook runs after the switchover and is not awaited by it.
  await waitFor('the post_switchover hook has finished', () => hookRuns.some((h) => h.event === 'post_switchover'), 120_000);
  const run = hookRuns.find((h) => h.event === 'post_switchover')!;
  const output = p.logs.filter((l) => l.event === 'hook.output').map((l) => `${l.stream}: ${l.line}`);
  t.equal(run.outcome, 'ok', 'the backup hook succeeded', { output });
  t.ok(output.some((l) => /backing up pg2 \(127\.0\.0\.1:\d+\)/.test(l)), 'it backed up the new primary pg2', { output });
  t.ok(p.app.status().events.some((e) => e.event === 'hook.run' && /post_switchover hook .* succeeded/.test(e.message)), 'the timeline reports the hook run');
  const backups = completeBackups(backupDir);
  t.equal(backups.length, 1, `one complete backup directory: ${backups.join(', ')}`);

  const restored = await startFromBackup(t, join(backupDir, backups[0]!), work);
  const [rows] = await queryPort<{ n: number; last: string }>(restored.port, `SELECT count(*)::int AS n, max(item) FILTER (WHERE id = ${ROWS}) AS last FROM orders`);
  t.same(rows, { n: ROWS, last: `item ${ROWS}` }, 'the restored server has every row written before the failover');
  const [state] = await queryPort<{ recovery: boolean; timeline: number }>(restored.port, 'SELECT pg_is_in_recovery() AS recovery, timeline_id AS timeline FROM pg_control_checkpoint()');
  t.equal(state?.recovery, false, 'it runs as a standalone primary');
  t.ok((state?.timeline ?? 0) >= 2, `it is on the new primary's timeline (${state?.timeline}), not the old one`);
});
