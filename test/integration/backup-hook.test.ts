// The shipped backup hook, run by the HookRunner against a real cluster: it produces complete
// base backups, keeps the newest KEEP, and a backup really starts as a PostgreSQL server that
// holds the rows written before it was taken.
import { spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client } from 'pg';
import t from 'tap';
import { HookRunner } from '../../src/hooks/runner';
import { createLogger } from '../../src/logger';
import { findPgBinDir } from '../../src/pg/binaries';
import { freePort } from '../../src/pg/ports';
import { isRoot, POSTGRES_OS_USER, runPg } from '../../src/pg/run';
import { startCluster } from '../helpers/cluster';

const SCRIPT = resolve(__dirname, '../../config/hooks/backup-new-primary.sh');
const KEEP = 2;
const COMPLETE_BACKUP = /^\d{8}T\d{6}Z(-\d+)?$/;

async function query<T>(port: number, sql: string): Promise<T[]> {
  const client = new Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 10_000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query(sql)).rows as T[];
  } finally {
    await client.end();
  }
}

t.test('backup-new-primary.sh takes restorable base backups and keeps the newest KEEP', async (t) => {
  const cluster = await startCluster(t, { replicas: 1 });
  const primary = cluster.primary;
  await query(primary.port, `CREATE TABLE accounts (id int PRIMARY KEY, owner text); INSERT INTO accounts SELECT g, 'owner ' || g FROM generate_series(1, 500) g`);

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
  const dataDir = made[made.length - 1] as string;
  const binDir = findPgBinDir();
  const port = await freePort();
  for (const signal of ['standby.signal', 'recovery.signal']) rmSync(join(dataDir, signal), { force: true });
  // postgresql.auto.conf is read last, so these win over the settings copied from the primary
  // (its port and its socket directory in the harness's pgwarden.node.conf).
  appendFileSync(join(dataDir, 'postgresql.auto.conf'), `\nport = ${port}\nunix_socket_directories = '${dataDir}'\ncluster_name = 'restored'\nprimary_conninfo = ''\n`);
  if (isRoot()) {
    // PostgreSQL refuses to run as root; the backup (taken as root) must become the postgres
    // user's, and the private directories above it passable.
    const chown = spawnSync('chown', ['-R', `${POSTGRES_OS_USER}:`, work], { encoding: 'utf8' });
    t.equal(chown.status, 0, `chown: ${chown.stderr}`);
  }
  chmodSync(dataDir, 0o700);
  const logFile = join(work, 'restored.log');
  t.teardown(async () => {
    try {
      await runPg(join(binDir, 'pg_ctl'), ['stop', '-D', dataDir, '-m', 'immediate', '-w', '-t', '30']);
    } catch {
      // not running (the start failed): nothing to stop
    }
  });
  await runPg(join(binDir, 'pg_ctl'), ['start', '-D', dataDir, '-l', logFile, '-w', '-t', '60']);
  const [counted] = await query<{ n: string; owner: string }>(port, `SELECT count(*) AS n, max(owner) FILTER (WHERE id = 500) AS owner FROM accounts`);
  t.same(counted, { n: '500', owner: 'owner 500' }, 'the restored server has the rows written before the backup');
  const [role] = await query<{ recovery: boolean }>(port, 'SELECT pg_is_in_recovery() AS recovery');
  t.equal(role?.recovery, false, 'it runs as a standalone primary');
});
