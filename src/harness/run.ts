// Part of the cluster harness for the demo, tests and benchmarks (see cluster.ts); not the proxy.
// Runs PostgreSQL programs (initdb, pg_ctl, pg_basebackup, and openssl for their certificates).
// PostgreSQL refuses to run as root, so when we are root every program runs as the `postgres`
// OS user through runuser; otherwise it runs directly as us.
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { PgwardenError } from '../errors';

export const POSTGRES_OS_USER = 'postgres';
const DEFAULT_TIMEOUT_MS = 120_000;
const OUTPUT_TAIL_CHARS = 2000;

export class PgCommandFailed extends PgwardenError {
  declare readonly code: 'PGW_PG_COMMAND_FAILED';
  constructor(
    readonly commandLine: string,
    readonly exitCode: number | null,
    readonly output: string,
    reason: string,
  ) {
    super('PGW_PG_COMMAND_FAILED', `\`${commandLine}\` ${reason}${output.trim() === '' ? '' : `:\n${tail(output.trim())}`}`);
  }
}

export class PostgresUserMissing extends PgwardenError {
  declare readonly code: 'PGW_POSTGRES_USER_MISSING';
  constructor() {
    super(
      'PGW_POSTGRES_USER_MISSING',
      `running as root, so PostgreSQL must run as the '${POSTGRES_OS_USER}' OS user, but that user does not exist — ` +
        'create it (apt-get install -y postgresql does) or run as an ordinary user',
    );
  }
}

export interface RunOptions {
  timeoutMs?: number;
  cwd?: string;
}

export interface RunOutput {
  stdout: string;
  stderr: string;
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

let cachedIds: { uid: number; gid: number } | undefined;

/** uid/gid of the postgres OS user (only needed, and only looked up, when we are root). */
export function postgresUserIds(): { uid: number; gid: number } {
  if (cachedIds !== undefined) return cachedIds;
  const uid = idOf('-u');
  const gid = idOf('-g');
  cachedIds = { uid, gid };
  return cachedIds;
}

function idOf(flag: '-u' | '-g'): number {
  const result = spawnSync('id', [flag, POSTGRES_OS_USER], { encoding: 'utf8', timeout: 5000 });
  const value = Number.parseInt(String(result.stdout ?? '').trim(), 10);
  if (result.status !== 0 || !Number.isInteger(value)) throw new PostgresUserMissing();
  return value;
}

/** The argv that runs `command args` as the postgres OS user when we are root, unchanged otherwise. */
export function asPostgresUser(command: string, args: readonly string[]): [string, string[]] {
  if (!isRoot()) return [command, [...args]];
  postgresUserIds(); // fail with a clear message before runuser fails with an obscure one
  return ['runuser', ['-u', POSTGRES_OS_USER, '--', command, ...args]];
}

/** Human-readable form of a command for error messages (as the caller wrote it, without runuser). */
export function describeCommand(command: string, args: readonly string[]): string {
  return [command, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/**
 * Runs a PostgreSQL program and resolves with its output; rejects with PgCommandFailed (which
 * names the command and carries its output) on a non-zero exit, a spawn error or a timeout.
 */
export function runPg(command: string, args: readonly string[], opts: RunOptions = {}): Promise<RunOutput> {
  const commandLine = describeCommand(command, args);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    let argv: [string, string[]];
    try {
      argv = asPostgresUser(command, args);
    } catch (err) {
      reject(err);
      return;
    }
    const child = spawn(argv[0], argv[1], {
      cwd: opts.cwd ?? '/', // the postgres user may not be allowed into our working directory
      env: pgFreeEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout = keepTail(stdout + chunk)));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = keepTail(stderr + chunk)));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
    }, timeoutMs);
    timer.unref();
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new PgCommandFailed(commandLine, null, stderr, `could not be started (${err.message})`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0 && !timedOut) {
        resolve({ stdout, stderr });
        return;
      }
      const reason = timedOut
        ? `timed out after ${timeoutMs} ms`
        : code === null
          ? `was killed by ${signal}`
          : `exited with code ${code}`;
      reject(new PgCommandFailed(commandLine, code, stdout + stderr, reason));
    });
  });
}

/**
 * Synchronous variant for the process 'exit' handler, where nothing asynchronous runs any more.
 * Never throws: cleanup on exit is best effort.
 */
export function runPgSync(command: string, args: readonly string[], timeoutMs = 15_000): number | null {
  try {
    const [cmd, argv] = asPostgresUser(command, args);
    const result = spawnSync(cmd, argv, { cwd: '/', env: pgFreeEnv(), stdio: 'ignore', timeout: timeoutMs });
    return result.status;
  } catch {
    return null;
  }
}

// PGHOST, PGPORT, PGDATA, PGUSER... from the caller's environment would silently redirect
// pg_basebackup or pg_ctl; every setting the harness needs is passed explicitly instead.
function pgFreeEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('PG')) env[key] = value;
  }
  return env;
}

function keepTail(text: string): string {
  return text.length > 4 * OUTPUT_TAIL_CHARS ? text.slice(-4 * OUTPUT_TAIL_CHARS) : text;
}

function tail(text: string): string {
  return text.length > OUTPUT_TAIL_CHARS ? `…${text.slice(-OUTPUT_TAIL_CHARS)}` : text;
}

// ---- Server processes ------------------------------------------------------------------------
// The postmaster is not our child (pg_ctl forks it and exits), so its life is observed through
// postmaster.pid and /proc rather than through a ChildProcess handle.

/** PID on the first line of <dataDir>/postmaster.pid, or undefined when there is no such file. */
export function readPostmasterPid(dataDir: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(join(dataDir, 'postmaster.pid'), 'utf8');
  } catch {
    return undefined;
  }
  const pid = Number.parseInt(text.split('\n', 1)[0] ?? '', 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** True while the process exists and is not a zombie (an unreaped dead postmaster is not running). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const state = procStat(pid)?.state;
  return state !== 'Z' && state !== 'X';
}

/** Whether the postmaster of dataDir is alive (a stale postmaster.pid after a crash says no). */
export function postmasterRunning(dataDir: string): boolean {
  const pid = readPostmasterPid(dataDir);
  return pid !== undefined && processAlive(pid);
}

/** PIDs whose parent is `pid` (Linux /proc; empty elsewhere). */
export function childPids(pid: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const children: number[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = procStat(Number(entry));
    if (stat?.ppid === pid) children.push(Number(entry));
  }
  return children;
}

function procStat(pid: number): { state: string; ppid: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid ...": comm may contain spaces and parentheses, so split after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0] ?? '', ppid: Number(fields[1]) };
}

/**
 * After a crash (kill9) the postmaster.pid stays behind. Where PID 1 does not reap orphans, as
 * in many containers, the dead postmaster lingers as a zombie that kill(pid, 0) still finds, so
 * PostgreSQL would refuse to start ("lock file postmaster.pid already exists"). Once the
 * postmaster and its children are gone, remove the file and the SysV shared memory segment it
 * names (PostgreSQL would otherwise leak it: it only reclaims the segment through that file).
 * Does nothing while the postmaster is alive.
 */
export function releaseCrashedServerState(dataDir: string): void {
  const pidFile = join(dataDir, 'postmaster.pid');
  let lines: string[];
  try {
    lines = readFileSync(pidFile, 'utf8').split('\n');
  } catch {
    return;
  }
  const pid = Number.parseInt(lines[0] ?? '', 10);
  if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) return;
  // Line 7 (PostgreSQL's LOCK_FILE_LINE_SHMEM_KEY) is "<key> <shmid>".
  const [key, shmid] = (lines[6] ?? '').trim().split(/\s+/).map((n) => Number.parseInt(n, 10));
  if (key !== undefined && shmid !== undefined && Number.isInteger(key) && Number.isInteger(shmid) && unattachedSegment(key, shmid)) {
    spawnSync('ipcrm', ['-m', String(shmid)], { stdio: 'ignore', timeout: 5000 });
  }
  // The socket lock file (line 4 is the port, line 5 the first socket directory) names the
  // dead postmaster too, and PostgreSQL refuses to start over it for the same reason.
  const socketLock = join(lines[4] ?? '', `.s.PGSQL.${(lines[3] ?? '').trim()}.lock`);
  removeIfNamesPid(socketLock, pid);
  removeIfNamesPid(pidFile, pid);
}

function removeIfNamesPid(lockFile: string, pid: number): void {
  try {
    if (Number.parseInt(readFileSync(lockFile, 'utf8').split('\n', 1)[0] ?? '', 10) === pid) rmSync(lockFile, { force: true });
  } catch {
    // gone already, or the data directory itself is gone
  }
}

// Only a segment with exactly this key and id and no process attached is ours to remove.
function unattachedSegment(key: number, shmid: number): boolean {
  let table: string;
  try {
    table = readFileSync('/proc/sysvipc/shm', 'utf8');
  } catch {
    return false;
  }
  return table.split('\n').some((row) => {
    const cols = row.trim().split(/\s+/);
    return Number(cols[0]) === key && Number(cols[1]) === shmid && Number(cols[6]) === 0;
  });
}

/** Signals `pid`; one that is already gone is not an error. */
export function killQuietly(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}
