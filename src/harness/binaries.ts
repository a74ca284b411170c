// Part of the cluster harness for the demo, tests and benchmarks (see cluster.ts); not the proxy.
// Finds the server programs the harness runs. PostgreSQL: one directory that holds all four
// programs, because mixing an initdb from one major version with a pg_basebackup from another
// (or with Debian's pg_wrapper, which picks a version by itself) gives data directories that the
// other programs refuse. etcd: etcd and etcdctl (the etcd harness, etcd.ts). Patroni: patroni
// and patronictl (the Patroni harness, patroni.ts).
import { spawnSync } from 'node:child_process';
import { accessSync, constants, readdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { PgwardenError } from '../errors';

export const REQUIRED_PG_PROGRAMS = ['initdb', 'pg_ctl', 'postgres', 'pg_basebackup'] as const;

const DEBIAN_PG_ROOT = '/usr/lib/postgresql';

export class PgBinariesMissing extends PgwardenError {
  declare readonly code: 'PGW_PG_BINARIES_MISSING';
  constructor(readonly searched: readonly string[]) {
    super(
      'PGW_PG_BINARIES_MISSING',
      'PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup, postgres) not found in PATH, ' +
        '`pg_config --bindir` or /usr/lib/postgresql/*/bin — install them: apt-get install -y postgresql',
    );
  }
}

let cachedBinDir: string | undefined;

/** The first directory (PATH, then `pg_config --bindir`, then /usr/lib/postgresql/<highest>/bin) holding all four programs. */
export function findPgBinDir(): string {
  if (cachedBinDir !== undefined) return cachedBinDir;
  const candidates = [...pathDirs(), ...pgConfigBinDir(), ...debianBinDirs()];
  const found = candidates.find(hasAllPrograms);
  if (found === undefined) throw new PgBinariesMissing(candidates);
  cachedBinDir = found;
  return found;
}

/** Absolute path of one PostgreSQL program in the directory findPgBinDir() chose. */
export function pgProgram(name: (typeof REQUIRED_PG_PROGRAMS)[number]): string {
  return join(findPgBinDir(), name);
}

function hasAllPrograms(dir: string): boolean {
  return REQUIRED_PG_PROGRAMS.every((program) => isExecutable(join(dir, program)));
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function pathDirs(): string[] {
  return (process.env.PATH ?? '').split(delimiter).filter((dir) => dir !== '');
}

function pgConfigBinDir(): string[] {
  const result = spawnSync('pg_config', ['--bindir'], { encoding: 'utf8', timeout: 5000 });
  if (result.status !== 0 || typeof result.stdout !== 'string') return [];
  const dir = result.stdout.trim();
  return dir === '' ? [] : [dir];
}

function debianBinDirs(): string[] {
  let versions: string[];
  try {
    versions = readdirSync(DEBIAN_PG_ROOT);
  } catch {
    return [];
  }
  // Highest major version first; "9.6" sorts below "10" because it is compared as a number.
  return versions
    .filter((v) => /^\d+(\.\d+)?$/.test(v))
    .sort((a, b) => Number(b) - Number(a))
    .map((v) => join(DEBIAN_PG_ROOT, v, 'bin'));
}

// ---- etcd ------------------------------------------------------------------------------------

// Debian's etcd-server and etcd-client put them here; /usr/bin is searched even when PATH is
// trimmed (a systemd unit, sudo's secure_path).
const ETCD_FALLBACK_DIR = '/usr/bin';

export class EtcdBinariesMissing extends PgwardenError {
  declare readonly code: 'PGW_ETCD_BINARIES_MISSING';
  constructor(readonly missing: readonly string[]) {
    super(
      'PGW_ETCD_BINARIES_MISSING',
      `${missing.join(' and ')} not found in PATH or ${ETCD_FALLBACK_DIR} — install them: apt-get install -y etcd-server etcd-client`,
    );
  }
}

/** Absolute paths of etcd and etcdctl (PATH first, then /usr/bin); throws EtcdBinariesMissing naming what is missing. */
export function findEtcd(): { etcd: string; etcdctl: string } {
  const dirs = [...pathDirs(), ETCD_FALLBACK_DIR];
  const find = (program: string): string | undefined => dirs.map((dir) => join(dir, program)).find(isExecutable);
  const etcd = find('etcd');
  const etcdctl = find('etcdctl');
  if (etcd === undefined || etcdctl === undefined) {
    throw new EtcdBinariesMissing([etcd === undefined ? 'etcd' : '', etcdctl === undefined ? 'etcdctl' : ''].filter((p) => p !== ''));
  }
  return { etcd, etcdctl };
}

// ---- Patroni ---------------------------------------------------------------------------------

// Debian's patroni package installs both here.
const PATRONI_FALLBACK_DIR = '/usr/bin';

export class PatroniBinariesMissing extends PgwardenError {
  declare readonly code: 'PGW_PATRONI_BINARIES_MISSING';
  constructor(readonly missing: readonly string[]) {
    super(
      'PGW_PATRONI_BINARIES_MISSING',
      `${missing.join(' and ')} not found in PATH or ${PATRONI_FALLBACK_DIR} — install them: apt-get install -y patroni`,
    );
  }
}

/** Absolute paths of patroni and patronictl (PATH first, then /usr/bin); throws PatroniBinariesMissing naming what is missing. */
export function findPatroni(): { patroni: string; patronictl: string } {
  const dirs = [...pathDirs(), PATRONI_FALLBACK_DIR];
  const find = (program: string): string | undefined => dirs.map((dir) => join(dir, program)).find(isExecutable);
  const patroni = find('patroni');
  const patronictl = find('patronictl');
  if (patroni === undefined || patronictl === undefined) {
    throw new PatroniBinariesMissing([patroni === undefined ? 'patroni' : '', patronictl === undefined ? 'patronictl' : ''].filter((p) => p !== ''));
  }
  return { patroni, patronictl };
}
