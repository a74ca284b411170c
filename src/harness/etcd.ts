// The etcd harness (src/harness/), not part of the proxy: a real etcd cluster of N members on
// this machine for the coordination tests, where several pgwarden instances agree through etcd.
// Never a mock. Members are child processes of this one, so their life is observed through
// the ChildProcess handle ('exit'). They die with us (cluster-cleanup.ts): the 'exit' hook kills
// them, and a watchdog reads their pids from <baseDir>/eN.pid should we be SIGKILLed.
import { type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findEtcd } from './binaries';
import { spawnSupervised } from './supervised-child';
import { registerLive, startPidFileWatchdog, unregisterLive } from './cluster-cleanup';
import { fileSize, lastLines, readFrom } from './cluster-files';
import { EtcdClusterError, etcdFreeEnv, makeEtcdBaseDir, validateEtcdOptions, type EtcdClusterOptions } from './etcd-options';
import { probeHealth } from './etcd-probe';
import { freePort } from './ports';
import { killQuietly } from './run';

export { EtcdClusterError, type EtcdClusterErrorCode, type EtcdClusterOptions } from './etcd-options';

const READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 10_000; // SIGTERM, then SIGKILL
const EXIT_TIMEOUT_MS = 10_000; // after SIGKILL
const PORT_ATTEMPTS = 3;
const LOG_TAIL_LINES = 15;
const POLL_MS = 100;

// Fast elections, so that a test that kills the leader waits a second rather than several
// (etcd wants the election timeout at least 5 heartbeats). The quota only bounds a runaway
// test; the WAL still preallocates 64 MB per member, on disk, not in memory.
const SPEED_FLAGS = ['--heartbeat-interval', '50', '--election-timeout', '500', '--quota-backend-bytes', String(64 * 1024 * 1024)];

export interface EtcdMember {
  readonly name: string;
  readonly clientPort: number;
  readonly peerPort: number;
  /** Pid of the member's latest process (a restarted member has a new one). */
  readonly pid: number;
}

interface MemberState {
  name: string;
  clientPort: number;
  peerPort: number;
  pid: number;
  readonly dataDir: string;
  readonly logFile: string;
  readonly pidFile: string; // for the watchdog
  child: ChildProcess | undefined; // undefined once the process has exited
  exited: Promise<void>;
  exitNote: string;
}

export class EtcdCluster {
  readonly members: readonly EtcdMember[];
  readonly baseDir: string;

  readonly #states: readonly MemberState[];
  readonly #etcd: string;
  readonly #addresses: readonly string[];
  readonly #log: (line: string) => void;
  #token = '';
  #watchdogPid: number | undefined;
  #destroyed: Promise<void> | undefined;

  private constructor(baseDir: string, etcd: string, count: number, addresses: readonly string[], log: (line: string) => void) {
    this.baseDir = baseDir;
    this.#etcd = etcd;
    this.#addresses = addresses;
    this.#log = log;
    const states: MemberState[] = [];
    for (let i = 1; i <= count; i++) {
      const name = `e${i}`;
      states.push({
        name, clientPort: 0, peerPort: 0, pid: 0,
        dataDir: join(baseDir, name), logFile: join(baseDir, `${name}.log`), pidFile: join(baseDir, `${name}.pid`),
        child: undefined, exited: Promise.resolve(), exitNote: 'not started',
      });
    }
    this.#states = states;
    this.members = Object.freeze([...states]);
  }

  /** N members started together as a new cluster, every one healthy on every client address. Cleans up on failure. */
  static async create(opts: EtcdClusterOptions = {}): Promise<EtcdCluster> {
    const count = opts.members ?? 3;
    const addresses = [...(opts.clientAddresses ?? ['127.0.0.1'])];
    validateEtcdOptions(count, addresses);
    const { etcd } = findEtcd();
    const cluster = new EtcdCluster(makeEtcdBaseDir(opts.baseDir), etcd, count, addresses, opts.log ?? (() => {}));
    registerLive(cluster, () => cluster.#destroySync());
    try {
      await cluster.#startNew();
    } catch (err) {
      await cluster.destroy().catch(() => {});
      throw err;
    }
    return cluster;
  }

  /** http://address:clientPort of every member, in member order; the address must be one the members listen on. */
  endpoints(address = '127.0.0.1'): string[] {
    if (!this.#addresses.includes(address)) {
      throw new EtcdClusterError('PGW_ETCD_OPTIONS', `the members do not listen on ${address}; their client addresses are ${this.#addresses.join(', ')}`);
    }
    return this.#states.map((s) => `http://${address}:${s.clientPort}`);
  }

  /** SIGTERM member i (0-based: e1 is 0), SIGKILL after 10 s; resolves once it has exited. A no-op when it is not running. */
  async stopMember(i: number): Promise<void> {
    const state = this.#member(i);
    if (state.child === undefined) return;
    this.#log(`${state.name}: SIGTERM ${state.pid}`);
    state.child.kill('SIGTERM');
    if (await this.#exitWithin(state, STOP_GRACE_MS)) return;
    await this.killMember(i);
  }

  /** SIGKILL member i (0-based); resolves once it has exited. A no-op when it is not running. */
  async killMember(i: number): Promise<void> {
    const state = this.#member(i);
    if (state.child === undefined) return;
    this.#log(`${state.name}: SIGKILL ${state.pid}`);
    state.child.kill('SIGKILL');
    if (!(await this.#exitWithin(state, EXIT_TIMEOUT_MS))) {
      throw new EtcdClusterError('PGW_ETCD_STOP_FAILED', `${state.name} (pid ${state.pid}) still runs ${EXIT_TIMEOUT_MS} ms after SIGKILL`);
    }
  }

  /**
   * Starts member i (0-based) again on its data directory and ports. Resolves once it reports
   * healthy, or, when the running members with it are no quorum (so no member can be healthy),
   * once it answers on its client port. A no-op when it is running.
   */
  async startMember(i: number): Promise<void> {
    const state = this.#member(i);
    if (state.child !== undefined) return;
    const quorum = this.#states.filter((s) => s.child !== undefined).length + 1 > this.#states.length / 2;
    const logOffset = fileSize(state.logFile);
    this.#spawn(state, 'existing');
    const problem = await this.#waitReady([state], quorum ? 'healthy' : 'answering');
    if (problem === undefined) return;
    await this.killMember(i).catch(() => {});
    throw new EtcdClusterError(
      'PGW_ETCD_START_FAILED',
      `${state.name}: could not restart etcd (data dir ${state.dataDir}): ${problem}\n` +
        `--- last lines of ${state.logFile} since the restart ---\n${lastLines(readFrom(state.logFile, logOffset), LOG_TAIL_LINES)}`,
    );
  }

  /** SIGKILLs every member, waits for them to exit and removes baseDir. Idempotent. */
  destroy(): Promise<void> {
    this.#destroyed ??= this.#destroyNow();
    return this.#destroyed;
  }

  async #destroyNow(): Promise<void> {
    this.#log(`destroying etcd cluster in ${this.baseDir}`);
    const stuck = await this.#killAll();
    rmSync(this.baseDir, { recursive: true, force: true });
    this.#stopWatchdog();
    unregisterLive(this);
    if (stuck.length > 0) {
      throw new EtcdClusterError('PGW_ETCD_STOP_FAILED', `etcd members still running ${EXIT_TIMEOUT_MS} ms after SIGKILL: ${stuck.map((s) => `${s.name} (pid ${s.pid})`).join(', ')}`);
    }
  }

  // For the process 'exit' handler: nothing asynchronous runs there any more, and SIGKILL needs no waiting.
  #destroySync(): void {
    for (const state of this.#states) if (state.child !== undefined) killQuietly(state.pid, 'SIGKILL');
    rmSync(this.baseDir, { recursive: true, force: true });
    this.#stopWatchdog();
    unregisterLive(this);
  }

  // Ports were free when picked but another process may bind one before etcd does; etcd then
  // exits with "address already in use" and the whole cluster starts again on new ports, with
  // empty data directories and a new token: a member that already met the others on the old
  // ports must not remember them. Only here, before anyone has seen the ports.
  async #startNew(): Promise<void> {
    const started = Date.now();
    chmodSync(this.baseDir, 0o700);
    this.#watchdogPid = startPidFileWatchdog(this.baseDir);
    for (let attempt = 1; ; attempt++) {
      this.#token = `pgwarden-${randomBytes(8).toString('hex')}`;
      for (const state of this.#states) {
        state.clientPort = await freePort();
        state.peerPort = await freePort();
        rmSync(state.dataDir, { recursive: true, force: true });
        writeFileSync(state.logFile, '');
      }
      this.#log(`starting etcd ${this.#states.map((s) => `${s.name}=client:${s.clientPort},peer:${s.peerPort}`).join(' ')} (attempt ${attempt})`);
      for (const state of this.#states) this.#spawn(state, 'new');
      const problem = await this.#waitReady(this.#states, 'healthy');
      if (problem === undefined) {
        this.#log(`etcd cluster ready in ${Date.now() - started} ms: ${this.endpoints().join(',')}`);
        return;
      }
      const logs = this.#states.map((s) => readFrom(s.logFile, 0)).join('\n');
      await this.#killAll();
      if (attempt < PORT_ATTEMPTS && /address already in use/.test(logs)) {
        this.#log('etcd: a port was taken before a member bound it; starting again on new ports');
        continue;
      }
      throw new EtcdClusterError(
        'PGW_ETCD_START_FAILED',
        `could not start a ${this.#states.length}-member etcd cluster in ${this.baseDir}: ${problem}\n` +
          this.#states.map((s) => `--- last lines of ${s.logFile} ---\n${lastLines(readFrom(s.logFile, 0), LOG_TAIL_LINES)}`).join('\n'),
      );
    }
  }

  #spawn(state: MemberState, clusterState: 'new' | 'existing'): void {
    const peerUrl = (s: MemberState): string => `http://127.0.0.1:${s.peerPort}`;
    const args = [
      '--name', state.name,
      '--data-dir', state.dataDir,
      '--listen-peer-urls', peerUrl(state),
      '--initial-advertise-peer-urls', peerUrl(state),
      '--listen-client-urls', this.#addresses.map((a) => `http://${a}:${state.clientPort}`).join(','),
      '--advertise-client-urls', `http://127.0.0.1:${state.clientPort}`,
      '--initial-cluster', this.#states.map((s) => `${s.name}=${peerUrl(s)}`).join(','),
      '--initial-cluster-state', clusterState,
      '--initial-cluster-token', this.#token,
      ...SPEED_FLAGS,
      // Logs to stderr, and stderr to the member's file: a bad flag or a Go panic is written to
      // stderr whatever --log-outputs says, and belongs in the same file as the log.
      '--logger', 'zap', '--log-outputs', 'stderr',
    ];
    spawnSupervised(state, this.#etcd, args, { cwd: this.baseDir, env: etcdFreeEnv() });
  }

  // Undefined once every member is ready on every client address, else why not: a member
  // exited, or the deadline passed (with the last answer of the first member not ready).
  async #waitReady(states: readonly MemberState[], ready: 'healthy' | 'answering'): Promise<string | undefined> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      const exited = states.find((s) => s.child === undefined);
      if (exited !== undefined) return `${exited.name} ${exited.exitNote}`;
      const probes = await Promise.all(states.flatMap((s) => this.#addresses.map((a) => probeHealth(a, s.clientPort, ready === 'healthy' ? '/health' : '/version'))));
      const notReady = probes.find((p) => (ready === 'healthy' ? !p.healthy : !p.answered));
      if (notReady === undefined) return undefined;
      if (Date.now() >= deadline) return `not ${ready} within ${READY_TIMEOUT_MS} ms (${notReady.note})`;
      // A ref'd timer: nothing else may keep the event loop alive while a caller awaits this.
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  // True once the member's process has exited; false after timeoutMs. The timer is ref'd for
  // the same reason as above (the member's own handle is not).
  async #exitWithin(state: MemberState, timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((r) => (timer = setTimeout(() => r(false), timeoutMs)));
    try {
      return await Promise.race([state.exited.then(() => true as const), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  // SIGKILL to every running member; the members that did not exit in time.
  async #killAll(): Promise<MemberState[]> {
    const results = await Promise.all(
      this.#states.map(async (state) => {
        state.child?.kill('SIGKILL');
        return (await this.#exitWithin(state, EXIT_TIMEOUT_MS)) ? undefined : state;
      }),
    );
    return results.filter((s): s is MemberState => s !== undefined);
  }

  #member(i: number): MemberState {
    const state = Number.isInteger(i) ? this.#states[i] : undefined;
    if (state === undefined) {
      throw new EtcdClusterError('PGW_ETCD_OPTIONS', `no etcd member ${i}: members are numbered 0 to ${this.#states.length - 1} (e1 is 0)`);
    }
    return state;
  }

  #stopWatchdog(): void {
    if (this.#watchdogPid === undefined) return;
    killQuietly(-this.#watchdogPid, 'SIGTERM'); // its own process group: the shell and its `sleep`
    this.#watchdogPid = undefined;
  }
}
