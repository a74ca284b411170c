// The Patroni harness (src/harness/), not part of the proxy: a real three-node Patroni cluster on
// this machine, for the tests that put pgwarden in front of Patroni (failover.mode: follow).
// Never a mock. One etcd member (etcd.ts) is the DCS; each node is a Patroni process with its own
// PostgreSQL on 127.0.0.1, both on free ports below 32768. Patroni bootstraps the cluster itself
// (initdb on whichever node takes the initialize key, pg_basebackup on the others) and runs, as
// the postgres OS user when we are root, since PostgreSQL refuses to run as root.
//
// Patroni restarts a PostgreSQL that stops, so teardown kills Patroni first (its whole process
// group: it is started detached) and then the postmasters, which Patroni starts in a session of
// their own. Nothing outlives this process (cluster-cleanup.ts): the 'exit' hook does the same
// synchronously, and the watchdog reads Patroni's pids from <baseDir>/<node>.pid and the
// postmasters' from their data directories should we be SIGKILLed.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { escapeIdentifier, escapeLiteral } from 'pg';
import { findPatroni, findPgBinDir } from './binaries';
import { spawnSupervised } from './supervised-child';
import { registerLive, startWatchdog, unregisterLive } from './cluster-cleanup';
import { waitUntil } from './cluster-options';
import { queryNode } from './cluster-query';
import { giveBaseDirToPostgres, lastLines, makeBaseDir, readFrom, writeOwnedByPostgres } from './cluster-files';
import { EtcdCluster } from './etcd';
import { PATRONI_NAMESPACE, renderPatroniConf } from './patroni-conf';
import { PatroniClusterError, patroniFreeEnv, validatePatroniOptions, type PatroniClusterOptions, type PatroniNode } from './patroni-options';
import { clusterMembers, restGet, type ClusterMember } from './patroni-rest';
import { freePort, portRefuses } from './ports';
import { stopServerNow, stopServerSync } from './server-teardown';
import { childPids, isRoot, killQuietly, postgresUserIds, postmasterRunning, processAlive, readPostmasterPid, releaseCrashedServerState } from './run';

export { PatroniClusterError, type PatroniClusterErrorCode, type PatroniClusterOptions, type PatroniNode } from './patroni-options';
export { type ClusterMember } from './patroni-rest';

const NODE_COUNT = 3;
// Bootstrap is initdb on one node and two base backups, on a machine that may be busy with
// other test runs.
const READY_TIMEOUT_MS = 120_000;
const PATRONICTL_TIMEOUT_MS = 120_000;
const EXIT_TIMEOUT_MS = 10_000; // after SIGKILL
const PORT_ATTEMPTS = 3;
const LOG_TAIL_LINES = 30;
const POLL_MS = 200;
const OUTPUT_TAIL_CHARS = 3000;

interface NodeState {
  name: string;
  host: string;
  port: number;
  pgPort: number;
  restPort: number;
  readonly dataDir: string;
  readonly configFile: string;
  readonly logFile: string;
  readonly pidFile: string; // for the watchdog
  child: ChildProcess | undefined; // undefined once Patroni has exited
  pid: number;
  exited: Promise<void>;
  exitNote: string;
}

export class PatroniCluster {
  readonly nodes: readonly PatroniNode[];
  readonly baseDir: string;
  readonly etcd: EtcdCluster;

  readonly #states: readonly NodeState[];
  readonly #opts: PatroniClusterOptions;
  readonly #patroni: string;
  readonly #patronictl: string;
  readonly #binDir: string;
  readonly #log: (line: string) => void;
  #scope = '';
  #watchdogPid: number | undefined;
  #destroyed: Promise<void> | undefined;

  private constructor(baseDir: string, etcd: EtcdCluster, opts: PatroniClusterOptions, programs: { patroni: string; patronictl: string }, binDir: string) {
    this.baseDir = baseDir;
    this.etcd = etcd;
    this.#opts = opts;
    this.#patroni = programs.patroni;
    this.#patronictl = programs.patronictl;
    this.#binDir = binDir;
    this.#log = opts.log ?? (() => {});
    const states: NodeState[] = [];
    for (let i = 1; i <= NODE_COUNT; i++) {
      const name = `p${i}`;
      states.push({
        name, host: '127.0.0.1', port: 0, pgPort: 0, restPort: 0,
        dataDir: join(baseDir, name), configFile: join(baseDir, `${name}.yml`), logFile: join(baseDir, `${name}.log`), pidFile: join(baseDir, `${name}.pid`),
        child: undefined, pid: 0, exited: Promise.resolve(), exitNote: 'not started',
      });
    }
    this.#states = states;
    this.nodes = Object.freeze([...states]);
  }

  /**
   * Nodes p1, p2, p3 under Patroni on a new one-member etcd: resolves once one is the leader and
   * the other two stream from it (and, with synchronousMode, one of them is its synchronous
   * standby), and the check user exists. Cleans up on failure.
   */
  static async create(opts: PatroniClusterOptions = {}): Promise<PatroniCluster> {
    validatePatroniOptions(opts);
    const programs = findPatroni();
    const binDir = findPgBinDir();
    const etcd = await EtcdCluster.create({ members: 1, log: opts.log });
    let cluster: PatroniCluster;
    try {
      const baseDir = opts.baseDir === undefined ? mkdtempSync(join(tmpdir(), 'pgwarden-patroni-')) : makeBaseDir(opts.baseDir);
      cluster = new PatroniCluster(baseDir, etcd, opts, programs, binDir);
    } catch (err) {
      await etcd.destroy().catch(() => {});
      throw err;
    }
    registerLive(cluster, () => cluster.#destroySync());
    try {
      await cluster.#startNew();
    } catch (err) {
      await cluster.destroy().catch(() => {});
      throw err;
    }
    return cluster;
  }

  /** Patroni's scope: the cluster's name in the DCS. */
  get scope(): string {
    return this.#scope;
  }

  /** Patroni's namespace (no trailing slash): the cluster's keys are under `<namespace>/<scope>/` in etcd. */
  get namespace(): string {
    return PATRONI_NAMESPACE;
  }

  /** The etcd v3 client URLs Patroni uses as its DCS. */
  etcdEndpoints(): string[] {
    return [...this.etcd.endpoints()];
  }

  /** The node by name (p1, p2, p3). */
  node(name: string): PatroniNode {
    const state = this.#states.find((s) => s.name === name);
    if (state === undefined) throw new PatroniClusterError('PGW_PATRONI_OPTIONS', `no node ${name}: the nodes are ${this.#states.map((s) => s.name).join(', ')}`);
    return state;
  }

  /** The node whose Patroni answers GET /primary with 200 (the leader, running as a primary), or undefined when not exactly one does. */
  async leader(): Promise<PatroniNode | undefined> {
    const answers = await Promise.all(this.#states.map((s) => restGet(s.restPort, '/primary')));
    const leaders = this.#states.filter((_, i) => answers[i]!.status === 200);
    return leaders.length === 1 ? leaders[0] : undefined;
  }

  /** The members as GET /cluster on the first node that answers shows them. */
  async members(): Promise<ClusterMember[]> {
    const notes: string[] = [];
    for (const state of this.#states) {
      const answer = await restGet(state.restPort, '/cluster');
      const members = clusterMembers(answer);
      if (members !== undefined) return members;
      notes.push(answer.note);
    }
    throw new PatroniClusterError('PGW_PATRONI_COMMAND_FAILED', `no node answered GET /cluster: ${notes.join('; ')}`);
  }

  /**
   * Until one node leads and the two others stream from it (with synchronousMode, one as its
   * synchronous standby); resolves with the leader. Throws with every node's log tail when a
   * Patroni process exits or timeoutMs passes.
   */
  async waitHealthy(timeoutMs = READY_TIMEOUT_MS): Promise<PatroniNode> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { leader, problem } = await this.#healthy();
      if (leader !== undefined) return leader;
      const exited = this.#states.find((s) => s.child === undefined);
      if (exited !== undefined || Date.now() >= deadline) {
        const why = exited !== undefined ? `Patroni of ${exited.name} ${exited.exitNote}` : `not healthy within ${timeoutMs} ms (${problem})`;
        throw new PatroniClusterError('PGW_PATRONI_START_FAILED', `Patroni cluster ${this.#scope} in ${this.baseDir}: ${why}\n${this.logTails()}`);
      }
      await new Promise((r) => setTimeout(r, POLL_MS)); // ref'd: the caller awaits this
    }
  }

  /** Until a leader other than `previous` answers GET /primary; resolves with it. */
  async waitForNewLeader(previous: PatroniNode, timeoutMs = READY_TIMEOUT_MS): Promise<PatroniNode> {
    let found: PatroniNode | undefined;
    await waitUntil(`a Patroni leader other than ${previous.name}`, timeoutMs, async () => {
      found = await this.leader();
      return found !== undefined && found.name !== previous.name;
    });
    return found!;
  }

  /** Runs `patronictl -c <p1's patroni.yml> …args`; resolves with its output, throws PGW_PATRONI_COMMAND_FAILED on a non-zero exit. */
  patronictl(args: readonly string[], timeoutMs = PATRONICTL_TIMEOUT_MS): Promise<string> {
    const argv = ['-c', this.#states[0]!.configFile, ...args];
    const commandLine = `patronictl ${argv.join(' ')}`;
    this.#log(commandLine);
    return new Promise((resolve, reject) => {
      const child = spawn(this.#patronictl, argv, { cwd: this.baseDir, env: patroniFreeEnv(this.baseDir), stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      const keep = (chunk: string): void => {
        output = (output + chunk).slice(-4 * OUTPUT_TAIL_CHARS);
      };
      child.stdout.setEncoding('utf8').on('data', keep);
      child.stderr.setEncoding('utf8').on('data', keep);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(new PatroniClusterError('PGW_PATRONI_COMMAND_FAILED', `\`${commandLine}\` could not be started (${err.message})`));
      });
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        if (code === 0) {
          resolve(output);
          return;
        }
        const reason = code === null ? `was killed by ${signal}${signal === 'SIGKILL' ? ` (timeout ${timeoutMs} ms)` : ''}` : `exited with code ${code}`;
        reject(new PatroniClusterError('PGW_PATRONI_COMMAND_FAILED', `\`${commandLine}\` ${reason}:\n${output.trim().slice(-OUTPUT_TAIL_CHARS)}`));
      });
    });
  }

  /**
   * `patronictl switchover --leader <leader> [--candidate <to>] --force`, then waits until a
   * node other than the old leader answers GET /primary (`to` when named). Resolves with both.
   */
  async switchover(to?: string): Promise<{ from: PatroniNode; to: PatroniNode; output: string }> {
    const from = await this.leader();
    if (from === undefined) throw new PatroniClusterError('PGW_PATRONI_COMMAND_FAILED', 'switchover: there is no leader answering GET /primary');
    if (to !== undefined) this.node(to);
    const output = await this.patronictl(['switchover', '--leader', from.name, ...(to === undefined ? [] : ['--candidate', to]), '--force']);
    const leader = await this.waitForNewLeader(from);
    if (to !== undefined && leader.name !== to) {
      throw new PatroniClusterError('PGW_PATRONI_COMMAND_FAILED', `switchover to ${to}: ${leader.name} became the leader instead\n${output}`);
    }
    return { from, to: leader, output };
  }

  /**
   * SIGKILL the postmaster of `node` (its pid from postmaster.pid); resolves with the moment the
   * signal was sent, once its port refuses connections and its children are gone. Patroni is
   * left running: what it does next is the point of the test.
   */
  async kill9Postmaster(node: PatroniNode): Promise<number> {
    const state = this.#state(node);
    const pid = readPostmasterPid(state.dataDir);
    if (pid === undefined || !processAlive(pid)) throw new PatroniClusterError('PGW_PATRONI_OPTIONS', `kill9Postmaster: PostgreSQL of ${state.name} is not running (data dir ${state.dataDir})`);
    const children = childPids(pid);
    this.#log(`${state.name}: SIGKILL postmaster ${pid}`);
    process.kill(pid, 'SIGKILL');
    const at = Date.now();
    await waitUntil(`${state.name}: port ${state.pgPort} to refuse connections after SIGKILL of postmaster ${pid}`, 30_000, () => portRefuses(state.pgPort));
    await waitUntil(`${state.name}: children of postmaster ${pid} to exit`, 20_000, async () => children.every((c) => !processAlive(c)));
    // Where nothing reaps the dead postmaster (PID 1 of many containers), its zombie keeps the
    // pid in postmaster.pid alive for kill(pid, 0), and the PostgreSQL that Patroni starts next
    // would refuse the data directory; PostgreSQL's own crash leaves no zombie behind Patroni.
    releaseCrashedServerState(state.dataDir);
    return at;
  }

  /** Runs one statement as superuser postgres on `node` over TCP. */
  async query(node: PatroniNode, sql: string, params?: unknown[]): Promise<any[]> {
    return queryNode(this.#state(node), sql, params);
  }

  /** The last lines of every node's log (Patroni's and its PostgreSQL's), for failure messages. */
  logTails(lines = LOG_TAIL_LINES): string {
    return this.#states.map((s) => `--- last lines of ${s.logFile} ---\n${lastLines(readFrom(s.logFile, 0), lines)}`).join('\n');
  }

  /** SIGKILLs Patroni, stops PostgreSQL with -m immediate, removes baseDir and destroys the etcd member. Idempotent. */
  destroy(): Promise<void> {
    this.#destroyed ??= this.#destroyNow();
    return this.#destroyed;
  }

  async #destroyNow(): Promise<void> {
    this.#log(`destroying Patroni cluster in ${this.baseDir}`);
    const stuck = await this.#killPatroni();
    await Promise.all(
      this.#states.map((state) => stopServerNow(this.#pgCtl, state.dataDir, this.baseDir, 30)),
    );
    rmSync(this.baseDir, { recursive: true, force: true });
    this.#stopWatchdog();
    unregisterLive(this);
    await this.etcd.destroy();
    if (stuck.length > 0) {
      throw new PatroniClusterError('PGW_PATRONI_START_FAILED', `Patroni still running ${EXIT_TIMEOUT_MS} ms after SIGKILL: ${stuck.map((s) => `${s.name} (pid ${s.pid})`).join(', ')}`);
    }
  }

  // For the process 'exit' handler: nothing asynchronous runs there any more. The etcd member
  // has an exit hook of its own.
  #destroySync(): void {
    for (const state of this.#states) if (state.child !== undefined) killGroup(state.pid);
    for (const state of this.#states) stopServerSync(this.#pgCtl, state.dataDir);
    rmSync(this.baseDir, { recursive: true, force: true });
    this.#stopWatchdog();
    unregisterLive(this);
  }

  // A port that was free when picked can be bound by someone else before Patroni or PostgreSQL
  // binds it; then every node starts again on new ports, with empty data directories and under a
  // new scope (the DCS remembers the failed one's initialize key and members). Only here, before
  // anyone has seen the ports.
  async #startNew(): Promise<void> {
    const started = Date.now();
    const problem = await giveBaseDirToPostgres(this.baseDir);
    if (problem !== undefined) throw new PatroniClusterError('PGW_PATRONI_OPTIONS', problem);
    this.#watchdogPid = startWatchdog(this.baseDir, this.#pgCtl, this.#states.map((s) => s.dataDir));
    const baseScope = this.#opts.scope ?? `pgw-${randomBytes(4).toString('hex')}`;
    for (let attempt = 1; ; attempt++) {
      this.#scope = attempt === 1 ? baseScope : `${baseScope}-${attempt}`;
      for (const state of this.#states) {
        state.pgPort = state.port = await freePort();
        state.restPort = await freePort();
        rmSync(state.dataDir, { recursive: true, force: true });
        writeFileSync(state.logFile, '');
        this.#writeConf(state);
      }
      this.#log(`starting Patroni cluster ${this.#scope}: ${this.#states.map((s) => `${s.name}=pg:${s.pgPort},rest:${s.restPort}`).join(' ')} (attempt ${attempt})`);
      for (const state of this.#states) this.#spawn(state);
      try {
        const leader = await this.waitHealthy();
        await this.#createCheckUser(leader);
        this.#log(`Patroni cluster ${this.#scope} ready in ${Date.now() - started} ms: leader ${leader.name}`);
        return;
      } catch (err) {
        const logs = this.#states.map((s) => readFrom(s.logFile, 0)).join('\n');
        await this.#killPatroni();
        for (const state of this.#states) {
          const pid = readPostmasterPid(state.dataDir);
          if (pid !== undefined && processAlive(pid)) killQuietly(pid);
        }
        if (attempt < PORT_ATTEMPTS && /Address already in use|could not bind/.test(logs)) {
          this.#log('Patroni: a port was taken before a node bound it; starting again on new ports');
          await waitUntil('the postmasters of the failed attempt to exit', EXIT_TIMEOUT_MS, async () => this.#states.every((s) => !postmasterRunning(s.dataDir)));
          continue;
        }
        throw err;
      }
    }
  }

  #writeConf(state: NodeState): void {
    const text = renderPatroniConf({
      scope: this.#scope,
      name: state.name,
      pgPort: state.pgPort,
      restPort: state.restPort,
      etcdHost: this.etcd.endpoints()[0]!.replace(/^http:\/\//, ''),
      dataDir: state.dataDir,
      socketDir: this.baseDir,
      binDir: this.#binDir,
      pgpassFile: join(this.baseDir, `${state.name}.pgpass`),
      synchronousMode: this.#opts.synchronousMode === true,
      checkUser: this.#opts.checkUser?.name,
    });
    writeOwnedByPostgres(state.configFile, text);
  }

  #spawn(state: NodeState): void {
    const ids = isRoot() ? postgresUserIds() : {};
    // detached: a process group of its own, so that teardown kills Patroni with whatever it
    // runs at that moment (initdb, pg_basebackup, pg_rewind).
    spawnSupervised(state, this.#patroni, [state.configFile], { cwd: this.baseDir, env: patroniFreeEnv(this.baseDir), detached: true, ...ids }, 'was killed by');
  }

  // One look: the leader, or why there is none yet. Healthy means GET /cluster lists the three
  // nodes, running, one of them the leader; the leader answers GET /primary; its
  // pg_stat_replication shows the two others streaming (one 'sync' with synchronousMode, and
  // Patroni lists that one as sync_standby: the DCS knows it may take over).
  async #healthy(): Promise<{ leader?: PatroniNode; problem: string }> {
    let members;
    try {
      members = await this.members();
    } catch (err) {
      return { problem: (err as Error).message };
    }
    const leaders = members.filter((m) => m.role === 'leader');
    if (members.length !== NODE_COUNT || leaders.length !== 1) return { problem: `GET /cluster: ${describe(members)}` };
    const notRunning = members.find((m) => m.state !== 'running' && m.state !== 'streaming');
    if (notRunning !== undefined) return { problem: `GET /cluster: ${describe(members)}` };
    const leader = this.#states.find((s) => s.name === leaders[0]!.name);
    if (leader === undefined) return { problem: `GET /cluster names an unknown leader: ${describe(members)}` };
    const primary = await restGet(leader.restPort, '/primary');
    if (primary.status !== 200) return { problem: primary.note };
    const synchronous = this.#opts.synchronousMode === true;
    if (synchronous && !members.some((m) => m.role === 'sync_standby')) return { problem: `no sync_standby yet: ${describe(members)}` };
    let rows;
    try {
      rows = await this.query(leader, "SELECT application_name AS name, sync_state FROM pg_stat_replication WHERE state = 'streaming'");
    } catch (err) {
      return { problem: `${leader.name}: ${(err as Error).message}` };
    }
    const others = this.#states.filter((s) => s !== leader).map((s) => s.name);
    const streaming = rows.filter((r) => others.includes(r.name));
    if (streaming.length !== others.length || (synchronous && !streaming.some((r) => r.sync_state === 'sync'))) {
      return { problem: `${leader.name} leads; pg_stat_replication streaming: ${JSON.stringify(rows)}` };
    }
    return { leader, problem: '' };
  }

  async #createCheckUser(leader: PatroniNode): Promise<void> {
    const user = this.#opts.checkUser;
    if (user === undefined) return;
    this.#log(`${leader.name}: CREATE ROLE ${user.name} (pg_monitor)`);
    await this.query(leader, `CREATE ROLE ${escapeIdentifier(user.name)} LOGIN PASSWORD ${escapeLiteral(user.password)} IN ROLE pg_monitor`);
  }

  // SIGKILL to every Patroni process group; the nodes whose Patroni did not exit in time.
  async #killPatroni(): Promise<NodeState[]> {
    const results = await Promise.all(
      this.#states.map(async (state) => {
        if (state.child === undefined) return undefined;
        killGroup(state.pid);
        return (await this.#exitWithin(state, EXIT_TIMEOUT_MS)) ? undefined : state;
      }),
    );
    return results.filter((s): s is NodeState => s !== undefined);
  }

  // True once Patroni has exited; false after timeoutMs. The timer is ref'd: Patroni's own
  // handle is not, and the caller awaits this.
  async #exitWithin(state: NodeState, timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((r) => (timer = setTimeout(() => r(false), timeoutMs)));
    try {
      return await Promise.race([state.exited.then(() => true as const), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  #state(node: PatroniNode): NodeState {
    const state = this.#states.find((s) => s === node || (s.name === node.name && s.dataDir === node.dataDir));
    if (state === undefined) throw new PatroniClusterError('PGW_PATRONI_OPTIONS', `node ${node.name} is not part of the Patroni cluster in ${this.baseDir}`);
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

function killGroup(pid: number): void {
  if (pid <= 0) return;
  killQuietly(-pid, 'SIGKILL');
  killQuietly(pid, 'SIGKILL');
}

function describe(members: readonly { name: string; role: string; state: string }[]): string {
  return members.map((m) => `${m.name} ${m.role} ${m.state}`).join(', ') || 'no members';
}
