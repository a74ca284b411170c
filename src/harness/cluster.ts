// The cluster harness (src/harness/), not part of the proxy: a real PostgreSQL
// streaming-replication cluster on this machine for `pgwarden demo`, the integration tests and
// the benchmarks. initdb for the primary, pg_basebackup -R for each replica, pg_ctl for
// everything that starts, stops or promotes a server. Never a mock. Only the demo command
// (src/demo.ts), tests and benches use the harness (test/unit/layers.test.ts checks src/).
import { appendFileSync, chmodSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { escapeIdentifier, escapeLiteral } from 'pg';
import { findPgBinDir } from './binaries';
import { registerLive, startWatchdog, unregisterLive } from './cluster-cleanup';
import { queryNode } from './cluster-query';
import { NODE_CONF, quoteConf, renderHba, renderSettings } from './cluster-conf';
import { fileSize, giveBaseDirToPostgres, lastLines, makeBaseDir, readFrom, writeOwnedByPostgres } from './cluster-files';
import { freePort, portRefuses } from './ports';
import { PgClusterError, validateOptions, waitUntil, type ClusterOptions, type PgNode } from './cluster-options';
import { stopServerNow, stopServerSync } from './server-teardown';
import { childPids, killQuietly, postmasterRunning, processAlive, readPostmasterPid, releaseCrashedServerState, runPg } from './run';

export { PgClusterError, type ClusterOptions, type PgClusterErrorCode, type PgNode } from './cluster-options';

const START_TIMEOUT_S = 60;
const READY_TIMEOUT_MS = 30_000;
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
    return queryNode(this.#state(node), sql, params);
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
    await waitUntil(`${state.name}: port ${state.port} to refuse connections after SIGKILL of postmaster ${pid}`, READY_TIMEOUT_MS, () => portRefuses(state.port));
    try {
      await waitUntil(`${state.name}: children of postmaster ${pid} to exit`, 10_000, async () => children.every((c) => !processAlive(c)));
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
    await waitUntil(`${state.name}: pg_is_in_recovery() to become false after promote`, READY_TIMEOUT_MS, async () => {
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
        `waitForReplication needs exactly one running node out of recovery, found ${primaries.length} (${primaries.map((p) => `${p.name} port ${p.port}`).join(', ') || 'none'})` +
          // Who promoted an unexpected primary is in its log (a promote request, a timeline switch).
          primaries.map((p) => `\n--- ${p.name} log tail ---\n${lastLines(readFrom(p.logFile, 0), 20)}`).join(''),
      );
    }
    const primary = primaries[0]!;
    const [{ lsn: target }] = await this.query(primary, 'SELECT pg_current_wal_lsn()::text AS lsn');
    await Promise.all(
      roles
        .filter((r) => r.inRecovery)
        .map(({ state }) => {
          let replayed = 'nothing';
          return waitUntil(
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
      this.#states.map((state) => stopServerNow(this.#pgCtl, state.dataDir, this.baseDir, START_TIMEOUT_S)),
    );
    rmSync(this.baseDir, { recursive: true, force: true });
    this.#stopWatchdog();
    unregisterLive(this);
  }

  // For the process 'exit' handler: nothing asynchronous runs there any more.
  #destroySync(): void {
    for (const state of this.#states) stopServerSync(this.#pgCtl, state.dataDir);
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
        // With several listen_addresses PostgreSQL starts when any one of them binds, and only
        // warns about the others. If 127.0.0.1:port is the one taken (by another test process's
        // server), every query of ours would reach that other server: stop and treat it as a
        // port taken.
        if (/Address already in use/.test(readFrom(state.logFile, logOffset))) {
          await runPg(this.#pgCtl, ['stop', '-D', state.dataDir, '-m', 'immediate', '-w', '-t', String(START_TIMEOUT_S)], { cwd: this.baseDir });
          throw new Error(`an address of listen_addresses could not be bound on port ${state.port}`);
        }
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
    await waitUntil(`${state.name}: 127.0.0.1:${state.port} to accept connections`, READY_TIMEOUT_MS, async () => {
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
    const problem = await giveBaseDirToPostgres(this.baseDir);
    if (problem !== undefined) throw new PgClusterError('PGW_PG_CLUSTER_OPTIONS', problem);
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
