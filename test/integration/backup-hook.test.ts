// The shipped backup hook, run by the HookRunner against a real cluster: it produces complete
// base backups, keeps the newest KEEP, and a backup really starts as a PostgreSQL server that
// holds the rows written before it was taken.
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import { COMPLETE_BACKUP, queryPort, startFromBackup } from '../helpers/backup';
import { HookRunner } from '../../src/hooks/runner';
import { createLogger } from '../../src/logger';
import { startCluster } from '../helpers/cluster';

const SCRIPT = resolve(__dirname, '../../config/hooks/backup-new-primary.sh');
const KEEP = 2;

t.test('backup-new-primary.sh takes restorable base backups and keeps the newest KEEP', async (t) => {
  const cluster = await startCluster(t, { replicas: 1 });
  const primary = cluster.primary;
  await queryPort(primary.port, `CREATE TABLE accounts (id int PRIMARY KEY, owner text); INSERT INTO accounts SELECT g, 'owner ' || g FROM generate_series(1, 500) g`);

  const work = mkdtempSync(join(tmpdir(), 'pgwarden-backup-hook-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  const backupDir = join(work, 'backups');
  const logs: Record<string, unknown>[] = [];
  const runner = new HookRunner(
    { post_switchover: [{ command: [SCRIPT], timeout: 120_000, env: { BACKUP_DIR: backupDir, KEEP: String(KEEP) } }] },
    { log: createLogger('debug', { write: (s: string) => void logs.push(JSON.parse(s) as Record<string, unknown>) }) },
  );
  t.teardown(() => runner.close());
  const ctx = { oldPrimary: cluster.replicas[0]!, newPrimary: { name: primary.name, host: primary.host, port: primary.port } };
  const complete = () => readdirSync(backupDir).filter((n) => COMPLETE_BACKUP.test(n)).sort();

  const made: string[] = [];
  for (let run = 1; run <= KEEP + 1; run++) {
    const before = logs.length;
    const [outcome] = await runner.run('post_switchover', ctx);
    const output = logs.slice(before).filter((l) => l.event === 'hook.output').map((l) => `${l.stream}: ${l.line}`);
    t.equal(outcome?.outcome, 'ok', `run ${run} succeeded:\n${output.join('\n')}`);
    const done = output.map((l) => /backup complete: (\S+)/.exec(l)?.[1]).filter((p) => p !== undefined);
    made.push(done[done.length - 1] as string);
    t.ok(existsSync(made[run - 1] as string), `run ${run}: its backup directory exists`);
    t.equal(statSync(made[run - 1] as string).uid, process.getuid?.(), 'owned by the user pgwarden runs as');
    t.same(readdirSync(backupDir).filter((n) => n.endsWith('.partial')), [], 'no .partial directory is left');
  }
  t.same(complete(), made.slice(-KEEP).map((p) => p.split('/').pop()), `the newest ${KEEP} of ${KEEP + 1} backups are kept`);
  t.ok(logs.some((l) => l.event === 'hook.output' && /removed old backup/.test(String(l.line))), 'the removal is logged');

  // Start PostgreSQL from the newest backup on a port of its own.
  const { port } = await startFromBackup(t, made[made.length - 1] as string, work);
  const [counted] = await queryPort<{ n: string; owner: string }>(port, `SELECT count(*) AS n, max(owner) FILTER (WHERE id = 500) AS owner FROM accounts`);
  t.same(counted, { n: '500', owner: 'owner 500' }, 'the restored server has the rows written before the backup');
  const [role] = await queryPort<{ recovery: boolean }>(port, 'SELECT pg_is_in_recovery() AS recovery');
  t.equal(role?.recovery, false, 'it runs as a standalone primary');
});
