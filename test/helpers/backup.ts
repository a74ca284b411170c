// Starts PostgreSQL from a base backup that backup-new-primary.sh made, on a port of its own, as
// a standalone primary, and stops it when the test ends — the proof that a backup is usable.
import { spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import type { Test } from 'tap';
import { findPgBinDir } from '../../src/harness/binaries';
import { freePort } from '../../src/harness/ports';
import { isRoot, POSTGRES_OS_USER, runPg } from '../../src/harness/run';

/** The names backup-new-primary.sh gives complete backups (never a `.partial` one). */
export const COMPLETE_BACKUP = /^\d{8}T\d{6}Z(-\d+)?$/;

/** Complete backup directories in `backupDir`, oldest first; [] when it does not exist yet. */
export function completeBackups(backupDir: string): string[] {
  try {
    return readdirSync(backupDir)
      .filter((n) => COMPLETE_BACKUP.test(n))
      .sort();
  } catch {
    return [];
  }
}

/** One statement as superuser postgres over TCP (trust for 127.0.0.1 in the harness). */
export async function queryPort<T>(port: number, sql: string): Promise<T[]> {
  const client = new Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 10_000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query(sql)).rows as T[];
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Start the backup in `dataDir` (somewhere under `ownedDir`, which is handed to the postgres OS
 * user when we are root) and resolve with its port. Stopped in t.teardown.
 */
export async function startFromBackup(t: Test, dataDir: string, ownedDir: string): Promise<{ port: number }> {
  const binDir = findPgBinDir();
  const port = await freePort();
  // A backup of a promoted replica may still say "standby"; this one must run on its own.
  for (const signal of ['standby.signal', 'recovery.signal']) rmSync(join(dataDir, signal), { force: true });
  // postgresql.auto.conf is read last, so these win over the settings copied from the server
  // (its port and socket directory in the harness's pgwarden.node.conf, its primary_conninfo).
  appendFileSync(join(dataDir, 'postgresql.auto.conf'), `\nport = ${port}\nunix_socket_directories = '${dataDir}'\ncluster_name = 'restored'\nprimary_conninfo = ''\n`);
  if (isRoot()) {
    // PostgreSQL refuses to run as root; the backup (taken as root) must become the postgres
    // user's, and the private directories above it passable.
    const chown = spawnSync('chown', ['-R', `${POSTGRES_OS_USER}:`, ownedDir], { encoding: 'utf8' });
    if (chown.status !== 0) throw new Error(`chown -R ${POSTGRES_OS_USER} ${ownedDir} failed: ${chown.stderr}`);
  }
  chmodSync(dataDir, 0o700);
  const logFile = join(ownedDir, `restored-${port}.log`);
  t.teardown(async () => {
    try {
      await runPg(join(binDir, 'pg_ctl'), ['stop', '-D', dataDir, '-m', 'immediate', '-w', '-t', '30']);
    } catch {
      // not running (the start failed): nothing to stop
    }
  });
  await runPg(join(binDir, 'pg_ctl'), ['start', '-D', dataDir, '-l', logFile, '-w', '-t', '60']);
  return { port };
}
