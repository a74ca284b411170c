// A real PostgreSQL streaming-replication cluster on this machine, for integration tests, the
// `pgwarden demo` command and the benchmarks: initdb for the primary, pg_basebackup -R for each
// replica, pg_ctl for everything that starts, stops or promotes a server. Never a mock.
import { spawn } from 'node:child_process';
import { appendFileSync, chmodSync, chownSync, closeSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client, escapeIdentifier, escapeLiteral, type QueryResult } from 'pg';
import { findPgBinDir } from './binaries';
import { freePort } from './ports';
import { childPids, isRoot, postgresUserIds, postmasterRunning, processAlive, readPostmasterPid, releaseCrashedServerState, runPg, runPgSync } from './run';

export interface PgNode {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
}

export interface ClusterOptions {
  /** Number of streaming replicas besides the primary; default 2. */
  replicas?: number;
  /** ssl=on with a self-signed certificate made by the openssl CLI. */
  ssl?: boolean;
  /** A LOGIN + pg_monitor role that must authenticate with scram-sha-256 over TCP. */
  checkUser?: { name: string; password: string };
  /** Extra postgresql.conf settings for every node. */
  settings?: Record<string, string>;
  /** Progress lines; silent by default. */
  log?: (line: string) => void;
  /** Where data directories and server logs go; default a fresh mkdtemp under os.tmpdir(). Removed by destroy(). */
  baseDir?: string;
}

export type PgClusterErrorCode =
  | 'PGW_PG_CLUSTER_OPTIONS' // invalid ClusterOptions, or a baseDir the postgres user cannot use
  | 'PGW_PG_START_FAILED' // pg_ctl start failed or the server never accepted connections (message has the log tail)
  | 'PGW_PG_WAIT_TIMEOUT' // a wait (replication, promotion, port closing) passed its deadline
  | 'PGW_PG_NO_SINGLE_PRIMARY' // waitForReplication found zero or several running nodes out of recovery
  | 'PGW_PG_NOT_A_MEMBER'; // a PgNode from another cluster

export class PgClusterError extends Error {
  constructor(readonly code: PgClusterErrorCode, message: string) {
    super(message);
    this.name = 'PgClusterError';
  }
}

// Fast and light, so that several clusters fit on a 2-core machine at once. Durability is
// deliberately off: these servers hold throw-away test data.
const BASE_SETTINGS: Readonly<Record<string, string>> = {
  fsync: 'off',
  full_page_writes: 'off',
  shared_buffers: '16MB',
  max_connections: '200',
  max_wal_senders: '10',
  wal_level: 'replica',
  hot_standby: 'on',
  wal_keep_size: '64MB',
  listen_addresses: '127.0.0.1',
  logging_collector: 'off',
  password_encryption: 'scram-sha-256',
};

// Per-node settings live in their own file: pg_basebackup copies the primary's postgresql.conf
// to every replica, and rewriting one small file is simpler than editing a copied one.
const NODE_CONF = 'pgwarden.node.conf';
const START_TIMEOUT_S = 60;
const READY_TIMEOUT_MS = 30_000;
const POLL_MS = 50;
const LOG_TAIL_LINES = 25;
const PORT_ATTEMPTS = 3;

interface NodeState {
  name: string;
  host: string;
  port: number;
  dataDir: string;
  logFile: string;
}

export class PgCluster {
  readonly nodes: readonly PgNode[];
  readonly primary: PgNode;
  readonly replicas: readonly PgNode[];
  readonly baseDir: string;

  readonly #states: readonly NodeState[];
  readonly #binDir: string;
  readonly #log: (line: string) => void;
  #watchdogPid: number | undefined;
  #destroyed: Promise<void> | undefined;

  private constructor(baseDir: string, binDir: string, states: NodeState[], log: (line: string) => void) {
    this.baseDir = baseDir;
    this.#binDir = binDir;
    this.#states = states;
    this.#log = log;
    this.nodes = Object.freeze([...states]);
    this.primary = states[0]!;
    this.replicas = Object.freeze(states.slice(1));
  }

  /** Primary pg1 plus replicas pg2, pg3, … streaming from it, all accepting connections. Cleans up on failure. */
  static async create(opts: ClusterOptions = {}): Promise<PgCluster> {
    const replicaCount = opts.replicas ?? 2;
    validateOptions(opts, replicaCount);
    const binDir = findPgBinDir();
    const baseDir = makeBaseDir(opts.baseDir);
    const states: NodeState[] = [];
    try {
      for (let i = 1; i <= replicaCount + 1; i++) {
        const name = `pg${i}`;
        states.push({ name, host: '127.0.0.1', port: await freePort(), dataDir: join(baseDir, name), logFile: join(baseDir, `${name}.log`) });
      }
    } catch (err) {
      rmSync(baseDir, { recursive: true, force: true });
      throw err;
    }
    const cluster = new PgCluster(baseDir, binDir, states, opts.log ?? (() => {}));
    registerLive(cluster, () => cluster.#destroySync());
    try {
      await cluster.#build(opts);
    } catch (err) {
      await cluster.destroy().catch(() => {});
      throw err;
    }
    return cluster;
  }

  /** Runs one statement as superuser postgres on database postgres over TCP; always closes its client. */
  async query(node: PgNode, sql: string, params?: unknown[]): Promise<any[]> {
    const state = this.#state(node);
    const client = new Client({ host: '127.0.0.1', port: state.port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 10_000 });
    client.on('error', () => {}); // a server dying mid-query surfaces through the awaited call below
    try {
      try {
        await client.connect();
      } catch (err) {
        if (err instanceof Error) err.message = `${state.name} (127.0.0.1:${state.port}, data dir ${state.dataDir}): ${err.message}`;
        throw err;
      }
      // A multi-statement simple query yields one QueryResult per statement: the last one's rows.
      const result = (await client.query(sql, params)) as QueryResult | QueryResult[];
      return Array.isArray(result) ? (result[result.length - 1]?.rows ?? []) : result.rows;
    } finally {
      await client.end().catch(() => {});
    }
  }

  /** pg_ctl stop -m mode -w; a no-op when the node is not running. */
  async stop(node: PgNode, mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    const state = this.#state(node);
    if (!postmasterRunning(state.dataDir)) return;
    this.#log(`${state.name}: stopping (-m ${mode})`);
    await runPg(this.#pgCtl, ['stop', '-D', state.dataDir, '-m', mode, '-w', '-t', String(START_TIMEOUT_S)], { cwd: this.baseDir });
  }

  /** pg_ctl start -w; resolves once the node accepts connections. */
  async start(node: PgNode): Promise<void> {
    const state = this.#state(node);
    if (postmasterRunning(state.dataDir)) {
      await this.#waitAcceptingConnections(state);
      return;
    }
    releaseCrashedServerState(state.dataDir);
    await this.#startNode(state, { mayMoveToNewPort: false }); // callers (proxy configs) know this port
  }

  /** SIGKILL the postmaster; resolves when its port refuses connections and its children are gone. */
  async kill9(node: PgNode): Promise<void> {
    const state = this.#state(node);
    const pid = readPostmasterPid(state.dataDir);
    if (pid === undefined || !processAlive(pid)) return;
    // Its children notice the postmaster's death and exit by themselves (like after a real
    // crash); wait for them so that a later start() does not find them holding shared memory.
    const children = childPids(pid);
    this.#log(`${state.name}: SIGKILL postmaster ${pid}`);
    process.kill(pid, 'SIGKILL');
    await this.#waitUntil(`${state.name}: port ${state.port} to refuse connections after SIGKILL of postmaster ${pid}`, READY_TIMEOUT_MS, () => portRefuses(state.port));
    try {
      await this.#waitUntil(`${state.name}: children of postmaster ${pid} to exit`, 10_000, async () => children.every((c) => !processAlive(c)));
    } catch {
      for (const child of children) if (processAlive(child)) killQuietly(child);
    }
    releaseCrashedServerState(state.dataDir);
  }

  /** pg_ctl promote -w; resolves once pg_is_in_recovery() is false on the node. */
  async promote(node: PgNode): Promise<void> {
    const state = this.#state(node);
    this.#log(`${state.name}: promoting`);
    await runPg(this.#pgCtl, ['promote', '-D', state.dataDir, '-w', '-t', String(START_TIMEOUT_S)], { cwd: this.baseDir });
    await this.#waitUntil(`${state.name}: pg_is_in_recovery() to become false after promote`, READY_TIMEOUT_MS, async () => {
      const [row] = await this.query(state, 'SELECT pg_is_in_recovery() AS in_recovery');
      return row?.in_recovery === false;
    });
  }

  /** Until every running replica has replayed up to the running primary's current WAL position. */
  async waitForReplication(timeoutMs = 30_000): Promise<void> {
    const running = this.#states.filter((s) => postmasterRunning(s.dataDir));
    const roles = await Promise.all(
      running.map(async (s) => ({ state: s, inRecovery: (await this.query(s, 'SELECT pg_is_in_recovery() AS r'))[0]?.r === true })),
    );
    const primaries = roles.filter((r) => !r.inRecovery).map((r) => r.state);
    if (primaries.length !== 1) {
      throw new PgClusterError(
        'PGW_PG_NO_SINGLE_PRIMARY',
        `waitForReplication needs exactly one running node out of recovery, found ${primaries.length} (${primaries.map((p) => p.name).join(', ') || 'none'})`,
      );
    }
    const primary = primaries[0]!;
    const [{ lsn: target }] = await this.query(primary, 'SELECT pg_current_wal_lsn()::text AS lsn');
    await Promise.all(
      roles
        .filter((r) => r.inRecovery)
        .map(({ state }) => {
          let replayed = 'nothing';
          return this.#waitUntil(
            () => `${state.name} (port ${state.port}) to replay up to ${primary.name}'s LSN ${target}; replayed ${replayed}`,
            timeoutMs,
            async () => {
              const [row] = await this.query(state, 'SELECT pg_last_wal_replay_lsn()::text AS lsn, pg_last_wal_replay_lsn() >= $1::pg_lsn AS done', [target]);
              replayed = row?.lsn ?? 'nothing';
              return row?.done === true;
            },
          );
        }),
    );
  }

  /** Stops every node with -m immediate and removes baseDir. Idempotent. */
  destroy(): Promise<void> {
    this.#destroyed ??= this.#destroyNow();
    return this.#destroyed;
  }

  async #destroyNow(): Promise<void> {
    this.#log(`destroying cluster in ${this.baseDir}`);
    await Promise.all(
      this.#states.map(async (state) => {
        try {
          await this.stop(state, 'immediate');
        } catch {
          const pid = readPostmasterPid(state.dataDir);
          if (pid !== undefined && processAlive(pid)) killQuietly(pid);
        }
        releaseCrashedServerState(state.dataDir);
      }),
    );
    rmSync(this.baseDir, { recursive: true, force: true });
    this.#stopWatchdog();
    unregisterLive(this);
  }

  // For the process 'exit' handler: nothing asynchronous runs there any more.
  #destroySync(): void {
    for (const state of this.#states) {
      if (postmasterRunning(state.dataDir)) {
        runPgSync(this.#pgCtl, ['stop', '-D', state.dataDir, '-m', 'immediate', '-w', '-t', '10']);
        const pid = readPostmasterPid(state.dataDir);
        if (pid !== undefined && processAlive(pid)) killQuietly(pid);
      }
      releaseCrashedServerState(state.dataDir);
    }
    rmSync(this.baseDir, { recursive: true, force: true });
    this.#stopWatchdog();
    unregisterLive(this);
  }

  async #build(opts: ClusterOptions): Promise<void> {
    const started = Date.now();
    await this.#prepareBaseDir();
    this.#watchdogPid = startWatchdog(this.baseDir, this.#pgCtl, this.#states.map((s) => s.dataDir));
    const primary = this.#states[0]!;
    this.#log(`${primary.name}: initdb ${primary.dataDir}`);
    await runPg(join(this.#binDir, 'initdb'), ['-D', primary.dataDir, '--no-sync', '--auth=trust', '-U', 'postgres', '--no-instructions', '--encoding=UTF8', '--locale=C'], { cwd: this.baseDir });
    if (opts.ssl === true) await this.#makeCertificate(primary);
    appendFileSync(join(primary.dataDir, 'postgresql.conf'), renderSettings(opts));
    writeFileSync(join(primary.dataDir, 'pg_hba.conf'), renderHba(opts.checkUser?.name));
    await this.#startNode(primary, { mayMoveToNewPort: true });
    if (opts.checkUser !== undefined) {
      const { name, password } = opts.checkUser;
      await this.query(primary, `CREATE ROLE ${escapeIdentifier(name)} LOGIN PASSWORD ${escapeLiteral(password)} IN ROLE pg_monitor`);
    }
    // The replicas copy the primary in parallel: each base backup mostly waits on I/O.
    const results = await Promise.allSettled(this.#states.slice(1).map((replica) => this.#buildReplica(primary, replica)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    this.#log(`cluster ready in ${Date.now() - started} ms: ${this.#states.map((s) => `${s.name}=127.0.0.1:${s.port}`).join(' ')}`);
  }

  async #buildReplica(primary: NodeState, replica: NodeState): Promise<void> {
    this.#log(`${replica.name}: pg_basebackup from ${primary.name} (port ${primary.port})`);
    // application_name lands in primary_conninfo (-R), so synchronous_standby_names can name the node.
    const conninfo = `host=127.0.0.1 port=${primary.port} user=postgres application_name=${replica.name}`;
    await runPg(join(this.#binDir, 'pg_basebackup'), ['-D', replica.dataDir, '-d', conninfo, '-R', '-X', 'stream', '-c', 'fast', '--no-sync'], { cwd: this.baseDir });
    await this.#startNode(replica, { mayMoveToNewPort: true });
  }

  // pg_ctl start, then wait for connections. A port that was free when allocated can be taken
  // by another test process before the server binds it; then the node gets a new port and
  // tries again (the port lives in the node's own pgwarden.node.conf) — only while the cluster
  // is being created, before anyone has seen the port.
  async #startNode(state: NodeState, { mayMoveToNewPort }: { mayMoveToNewPort: boolean }): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      this.#writeNodeConf(state);
      this.#log(`${state.name}: starting on 127.0.0.1:${state.port}`);
      const logOffset = fileSize(state.logFile);
      try {
        await runPg(this.#pgCtl, ['start', '-D', state.dataDir, '-l', state.logFile, '-w', '-t', String(START_TIMEOUT_S)], { cwd: this.baseDir });
        await this.#waitAcceptingConnections(state);
        return;
      } catch (err) {
        const logSinceStart = readFrom(state.logFile, logOffset);
        if (mayMoveToNewPort && attempt < PORT_ATTEMPTS && /Address already in use|could not bind/.test(logSinceStart)) {
          state.port = await freePort();
          continue;
        }
        throw new PgClusterError(
          'PGW_PG_START_FAILED',
          `${state.name}: could not start PostgreSQL on 127.0.0.1:${state.port} (data dir ${state.dataDir}): ${(err as Error).message}\n` +
            `--- last lines of ${state.logFile} ---\n${lastLines(readFrom(state.logFile, 0), LOG_TAIL_LINES)}`,
        );
      }
    }
  }

  async #waitAcceptingConnections(state: NodeState): Promise<void> {
    await this.#waitUntil(`${state.name}: 127.0.0.1:${state.port} to accept connections`, READY_TIMEOUT_MS, async () => {
      await this.query(state, 'SELECT 1');
      return true;
    });
  }

  #writeNodeConf(state: NodeState): void {
    const text =
      `# Written by pgwarden's cluster harness for node ${state.name}.\n` +
      `port = ${state.port}\n` +
      // The node's own directory: /var/run/postgresql may not exist or not be writable.
      `unix_socket_directories = ${quoteConf(state.dataDir)}\n` +
      // Shows in `ps` and is the walreceiver's fallback application_name.
      `cluster_name = ${quoteConf(state.name)}\n`;
    writeOwnedByPostgres(join(state.dataDir, NODE_CONF), text);
  }

  async #makeCertificate(state: NodeState): Promise<void> {
    this.#log(`${state.name}: self-signed certificate (openssl)`);
    const key = join(state.dataDir, 'server.key');
    // EC keys: generating one takes milliseconds where RSA takes a noticeable fraction of a second.
    await runPg(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '30', '-subj', '/CN=127.0.0.1',
        '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', key, '-out', join(state.dataDir, 'server.crt')],
      { cwd: this.baseDir },
    );
    chmodSync(key, 0o600); // PostgreSQL refuses a private key readable by group or others
  }

  async #prepareBaseDir(): Promise<void> {
    chmodSync(this.baseDir, 0o700);
    if (!isRoot()) return;
    const { uid, gid } = postgresUserIds();
    chownSync(this.baseDir, uid, gid);
    try {
      await runPg('test', ['-w', this.baseDir, '-a', '-x', this.baseDir]);
    } catch {
      throw new PgClusterError('PGW_PG_CLUSTER_OPTIONS', `the postgres OS user cannot write to ${this.baseDir}: every parent directory must be searchable by it (choose a baseDir under ${tmpdir()})`);
    }
  }

  // Polls check() until it returns true. The pause between polls is a ref'd timer on purpose:
  // while a caller awaits this, nothing else may keep the event loop alive, and an unref'd
  // timer would let the process exit in the middle of the wait. It always ends by the deadline.
  async #waitUntil(what: string | (() => string), timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let lastError: unknown;
    for (;;) {
      try {
        if (await check()) return;
      } catch (err) {
        lastError = err;
      }
      if (Date.now() >= deadline) {
        const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
        throw new PgClusterError('PGW_PG_WAIT_TIMEOUT', `timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}${why}`);
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  #state(node: PgNode): NodeState {
    const state = this.#states.find((s) => s === node || (s.name === node.name && s.dataDir === node.dataDir));
    if (state === undefined) throw new PgClusterError('PGW_PG_NOT_A_MEMBER', `node ${node.name} is not part of the cluster in ${this.baseDir}`);
    return state;
  }

  get #pgCtl(): string {
    return join(this.#binDir, 'pg_ctl');
  }

  #stopWatchdog(): void {
    if (this.#watchdogPid === undefined) return;
    killQuietly(-this.#watchdogPid, 'SIGTERM'); // its own process group: the shell and its `sleep`
    this.#watchdogPid = undefined;
  }
}

// ---- configuration text ----------------------------------------------------------------------

function validateOptions(opts: ClusterOptions, replicas: number): void {
  if (!Number.isInteger(replicas) || replicas < 0 || replicas > 20) {
    throw new PgClusterError('PGW_PG_CLUSTER_OPTIONS', `replicas must be an integer from 0 to 20, got ${replicas}`);
  }
  for (const key of Object.keys(opts.settings ?? {})) {
    if (!/^[A-Za-z_][A-Za-z0-9_.]*$/.test(key)) throw new PgClusterError('PGW_PG_CLUSTER_OPTIONS', `invalid postgresql.conf setting name: ${JSON.stringify(key)}`);
  }
  const name = opts.checkUser?.name;
  if (name !== undefined && (name === '' || /["\s]/.test(name))) {
    throw new PgClusterError('PGW_PG_CLUSTER_OPTIONS', `checkUser.name must be non-empty without quotes or spaces (it goes into pg_hba.conf), got ${JSON.stringify(name)}`);
  }
}

function renderSettings(opts: ClusterOptions): string {
  const settings: Record<string, string> = { ...BASE_SETTINGS };
  if (opts.ssl === true) Object.assign(settings, { ssl: 'on', ssl_cert_file: 'server.crt', ssl_key_file: 'server.key' });
  Object.assign(settings, opts.settings ?? {});
  const lines = Object.entries(settings).map(([k, v]) => `${k} = ${quoteConf(v)}`);
  return `\n# ---- pgwarden cluster harness ----\n${lines.join('\n')}\ninclude_if_exists = '${NODE_CONF}'\n`;
}

// The check user's line comes first: pg_hba.conf is first-match, and the trust lines below
// would otherwise let it in without a password.
function renderHba(checkUser: string | undefined): string {
  const lines = ['# TYPE  DATABASE     USER  ADDRESS  METHOD', 'local all all trust', 'local replication all trust'];
  if (checkUser !== undefined) {
    lines.push(`host all "${checkUser}" 127.0.0.1/32 scram-sha-256`, `host all "${checkUser}" ::1/128 scram-sha-256`);
  }
  lines.push(
    'host all all 127.0.0.1/32 trust',
    'host all all ::1/128 trust',
    'host replication all 127.0.0.1/32 trust',
    'host replication all ::1/128 trust',
  );
  return `${lines.join('\n')}\n`;
}

// Any GUC value may be written as a quoted string; a quote inside doubles.
function quoteConf(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

// ---- files -----------------------------------------------------------------------------------

function makeBaseDir(requested: string | undefined): string {
  if (requested === undefined) return mkdtempSync(join(tmpdir(), 'pgwarden-cluster-'));
  const dir = resolve(requested);
  mkdirSync(dir, { recursive: true });
  return dir;
}

function writeOwnedByPostgres(file: string, text: string): void {
  writeFileSync(file, text, { mode: 0o600 });
  if (isRoot()) {
    const { uid, gid } = postgresUserIds();
    chownSync(file, uid, gid);
  }
}

function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

function readFrom(file: string, offset: number): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return '';
  }
  try {
    const length = Math.max(0, Math.min(fileSize(file) - offset, 256 * 1024));
    const start = Math.max(offset, fileSize(file) - length);
    const buffer = Buffer.alloc(length);
    const read = readSync(fd, buffer, 0, length, start);
    return buffer.subarray(0, read).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

function lastLines(text: string, count: number): string {
  const lines = text.trimEnd().split('\n');
  return lines.slice(-count).join('\n') || '(empty)';
}

// ---- processes -------------------------------------------------------------------------------

function killQuietly(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** True when a TCP connect to 127.0.0.1:port is refused (the listener is gone). */
function portRefuses(port: number): Promise<boolean> {
  return new Promise((resolvePort) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setTimeout(1000);
    socket.once('connect', () => {
      socket.destroy();
      resolvePort(false);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolvePort(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolvePort(err.code === 'ECONNREFUSED'));
    socket.once('close', () => resolvePort(false)); // no-op when error/connect already resolved
  });
}

// A detached shell that outlives us: if this process dies without running its 'exit' handler
// (SIGKILL, or a signal handled by someone who then re-raises it), it stops the servers and
// removes baseDir within a second. After a normal destroy() it is killed and finds nothing.
const WATCHDOG_SCRIPT = `
parent=$1; base=$2; pgctl=$3; asroot=$4; shift 4
while kill -0 "$parent" 2>/dev/null && [ -d "$base" ]; do sleep 1; done
[ -d "$base" ] || exit 0
for d in "$@"; do
  [ -f "$d/postmaster.pid" ] || continue
  if [ "$asroot" = 1 ]; then runuser -u postgres -- "$pgctl" stop -D "$d" -m immediate -w -t 10
  else "$pgctl" stop -D "$d" -m immediate -w -t 10; fi
done >/dev/null 2>&1
rm -rf "$base"
`;

function startWatchdog(baseDir: string, pgCtl: string, dataDirs: string[]): number | undefined {
  const child = spawn('sh', ['-c', WATCHDOG_SCRIPT, 'pgwarden-cluster-watchdog', String(process.pid), baseDir, pgCtl, isRoot() ? '1' : '0', ...dataDirs], {
    cwd: '/',
    detached: true, // its own process group: a Ctrl-C aimed at us must not kill it too
    stdio: 'ignore',
  });
  child.on('error', () => {}); // without a shell there is no watchdog; the 'exit' handler remains
  child.unref();
  return child.pid;
}

// ---- clusters still alive when the process exits ---------------------------------------------

const live = new Map<PgCluster, () => void>();
let exitHooksInstalled = false;

function registerLive(cluster: PgCluster, destroySync: () => void): void {
  live.set(cluster, destroySync);
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', destroyAllSync);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    // Someone else already handles this signal: they decide how the process ends, and the
    // 'exit' handler (or the watchdog) cleans up then. Listening too would change their logic.
    if (process.listenerCount(signal) > 0) continue;
    const onSignal = (): void => {
      process.removeListener(signal, onSignal);
      // A listener added after ours handles the signal; do not end the process under it.
      if (process.listenerCount(signal) > 0) return;
      destroyAllSync();
      process.kill(process.pid, signal); // default action again: die by this signal, as without us
    };
    process.on(signal, onSignal);
  }
}

function unregisterLive(cluster: PgCluster): void {
  live.delete(cluster);
}

function destroyAllSync(): void {
  for (const destroySync of [...live.values()]) {
    try {
      destroySync();
    } catch {
      // best effort: the next cluster still deserves its cleanup
    }
  }
}
