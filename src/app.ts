// Wires one running pgwarden: a Topology fed by one HealthChecker per backend, one Router and
// Listener per listener, the cancel registry, the event bus and timeline, and the operator's
// controls (AdminController). `start()` binds, `stop()` drains. What happens when the cluster
// changes is in control/reactions.ts, `reload()` in control/reload.ts, the drain that stop()
// and a switchover share in control/drain.ts, and how sessions are reported in
// control/session-reporting.ts.
import type { Config, BackendConfig, ListenerConfig } from './config/types';
import type { AdminController, ReloadResult, SwitchoverResult } from './admin/controller';
import type { AdminState, StatusSnapshot } from './routing/status-snapshot';
import type { HistorySnapshot } from './admin/history-snapshot';
import { SqlState, UnknownBackendError } from './errors';
import type { HealthChecker } from './health/checker';
import { backendChecker } from './control/checker-wiring';
import type { Logger } from './logger';
import { Bus } from './events';
import { Timeline } from './control/timeline';
import { buildStatus } from './control/status';
import { History, readProxy } from './control/history';
import { Topology } from './routing/topology';
import { StartupSlots } from './routing/startup-slots';
import { DescriptorShortage } from './control/descriptor-shortage';
import { realClock } from './clock';
import { CancelRegistry } from './proxy/cancel-registry';
import { AuthLookup } from './proxy/auth-lookup';
import { randomBytes } from 'node:crypto';
import { Listener } from './proxy/listener';
import { listenerContext } from './control/listener-wiring';
import type { Session } from './proxy/session';
import { HookRunner } from './hooks/runner';
import type { Endpoint } from './hooks/env';
import { runSwitchover } from './control/switchover';
import { PrimaryLoss } from './control/primary-loss';
import { RoleWatch } from './control/role-watch';
import { startObservability, type Observability } from './control/observability';
import type { HostStatus } from './host/status';
import { setKeepaliveWarningSink } from './net/keepalive';
import { QuietGc, keepYoungGenerationSmall } from './control/quiet-gc';
import type { ControlContext } from './control/context';
import { applyAgentReport, reactToTopology } from './control/reactions';
import { reload, type Reloadable } from './control/reload';
import { closeSessions, drainAtBoundaries } from './control/drain';
import type { Coordinator } from './control/coordination/coordinator';
import { coordinatorFor } from './control/coordination/wire';
import { loadTlsFiles, type TlsFiles } from './net/tls-credentials';
import { PatroniWatch } from './control/patroni-watch';
import { PatroniDcs } from './coordination/patroni-dcs';
import { surviveKit, type SurviveKit, type SurviveOptions } from './survive/survive-kit';

const VERSION: string = require('../package.json').version;

export interface AppOptions {
  /** Re-reads the config for reload(); absent: reload() reports that there is no file. */
  loadConfig?: () => Config;
  /** The status page's history (control/history.ts): tests sample faster over a shorter window. */
  history?: { intervalMs?: number; windowMs?: number };
  /**
   * sessions.survive: the session-state tracker and the logins by secret kind (defaults:
   * survive/state-tracker.ts, and survive/server-login.ts for SCRAM and md5 secrets).
   */
  survive?: SurviveOptions;
}

export class App implements AdminController, ControlContext, Reloadable {
  readonly bus = new Bus();
  readonly topology: Topology;
  readonly timeline: Timeline;
  readonly checkers = new Map<string, HealthChecker>();
  readonly listeners: Listener[] = [];
  /** Listeners removed by a reload whose sessions have not ended yet. */
  readonly retired = new Set<Listener>();
  private readonly cancels = new CancelRegistry();
  /** auth.mode proxy: auth.query and its cache (made lazily: the topology comes in the constructor). */
  private authLookup?: AuthLookup;
  private readonly authMockKey = randomBytes(32);
  /** Session startups in flight per server (proxy.max_concurrent_startups), shared by every listener. */
  readonly startups = new StartupSlots(() => this.config.proxy.maxConcurrentStartups);
  /** Accepts, connects and checks that failed for lack of file descriptors: one log line per burst. */
  private readonly descriptors: DescriptorShortage;
  private readonly startedAt = new Date();
  private readonly quietGc = new QuietGc(5_000, (sessions, ms) =>
    this.log.debug({ event: 'memory.collected', sessions, ms: Math.round(ms) }, `collected the garbage of a burst of ${sessions} sessions opened or closed in ${Math.round(ms)} ms`),
  );
  private stopping?: Promise<void>;
  private readonly survive: SurviveKit;
  /** Latest host sample (set by the host sampler). */
  private hostStatus?: HostStatus;
  private observability?: Observability;
  /** Agent reports per backend, for the status page (set by the agent wiring). */
  private readonly agentReports = new Map<string, { at: number; reachable: boolean; raw?: string }>();

  hooks: HookRunner;
  private switching?: Promise<SwitchoverResult>;
  private readonly primaryLoss: PrimaryLoss;
  private readonly roleWatch: RoleWatch;
  private readonly coordinator?: Coordinator;
  /** `health.patroni`: Patroni's view of each member and its switchover key. */
  readonly patroni?: PatroniWatch;
  private readonly recorder: History;
  /**
   * The files config.tls names as the last good load read them: pgwarden's certificate under
   * terminate, the servers' CA. A reload replaces them only when the new ones load.
   */
  tlsFiles: TlsFiles;

  /** Throws TlsFilesError (exit 2, like a bad config) when the files config.tls names cannot be used. */
  constructor(public config: Config, readonly log: Logger, private readonly opts: AppOptions = {}) {
    this.tlsFiles = loadTlsFiles(config.tls);
    this.survive = surviveKit(opts.survive);
    this.descriptors = new DescriptorShortage(log, realClock);
    this.bus.setMaxListeners(50);
    setKeepaliveWarningSink(log);
    this.timeline = new Timeline(this.bus, log);
    this.hooks = new HookRunner(config.hooks, { log, bus: this.bus });
    // Hook runs are logged by the runner; the timeline only records them.
    this.bus.on('timeline', (e) => {
      if (e.event === 'hook.run') this.timeline.record(e);
    });
    this.topology = new Topology(config.backends, config.health);
    this.primaryLoss = new PrimaryLoss({
      topology: this.topology,
      timeline: this.timeline,
      config: () => this.config,
      hooks: () => this.hooks,
      pokeAll: (reason) => {
        for (const c of this.checkers.values()) c.poke(reason);
      },
      poke: (b, reason) => this.checkers.get(b)?.poke(reason),
      endpoint: (n) => this.endpoint(n),
      switching: () => this.switching !== undefined,
      coordinated: () => this.coordinator !== undefined,
    });
    reactToTopology(this, this.primaryLoss);
    this.roleWatch = new RoleWatch({
      topology: this.topology,
      config: () => this.config,
      setWatch: (ms) => {
        for (const c of this.checkers.values()) c.watch(ms);
      },
      onChange: (ms) => this.log.debug({ event: 'failover.watch', intervalMs: ms ?? null }, ms ? `polling replica roles every ${ms} ms` : 'replica role polls stopped'),
      alsoWhile: () => this.coordinator?.etcdLost() === true,
    });
    this.bus.on('coordination.etcd', () => this.roleWatch.refresh());
    if (config.coordination) this.coordinator = coordinatorFor(config.coordination, this, (b, reason) => this.checkers.get(b)?.poke(reason));
    const patroni = config.health.patroni;
    if (patroni) {
      this.patroni = PatroniWatch.create({
        topology: this.topology,
        timeline: this.timeline,
        log,
        config: () => this.config,
        sessions: (b) => this.sessions(b),
        ...(patroni.dcs && { dcs: new PatroniDcs(patroni.dcs) }),
      });
    }
    for (const b of config.backends) this.checkers.set(b.name, this.makeChecker(b));
    for (const l of config.listeners) this.listeners.push(this.makeListener(l));
    this.recorder = new History({ bus: this.bus, read: () => readProxy(this.topology, this.listeners, this.sessions()), ...opts.history });
  }

  /** Cluster-wide hooks run once for the cluster: here when this instance is alone or leads. */
  clusterHooksHere(): boolean {
    return this.coordinator === undefined || this.coordinator.isLeader();
  }

  async start(): Promise<void> {
    keepYoungGenerationSmall();
    for (const c of this.checkers.values()) c.start();
    this.coordinator?.start();
    this.patroni?.start();
    try {
      for (const l of this.listeners) await l.listen();
      this.observability = await startObservability({
        config: this.config,
        log: this.log,
        bus: this.bus,
        controller: this,
        onHostSample: (s) => (this.hostStatus = s),
        agentReports: this.agentReports,
        applyAgentReport: (backend, r, previous, raw) => applyAgentReport(this, backend, r, previous, raw),
      });
      this.quietGc.started();
      this.recorder.start();
    } catch (e) {
      await this.stop(0);
      throw e;
    }
    for (const l of this.listeners) this.logListenerReady(l);
  }

  /** The admin API's bound address, when it runs. */
  adminAddress(): { address: string; port: number } | undefined {
    return this.observability?.admin?.address();
  }

  listener(name: string): Listener {
    const l = this.listeners.find((x) => x.name === name);
    if (!l) throw new Error(`no listener named ${name}`);
    return l;
  }

  /** Every established or starting session, optionally only those on one backend. */
  sessions(backend?: string): Session[] {
    const out: Session[] = [];
    for (const l of [...this.listeners, ...this.retired]) {
      for (const s of l.sessions) if (backend === undefined || s.backendName === backend) out.push(s);
    }
    return out;
  }

  // ---- AdminController -------------------------------------------------------------------

  status(): StatusSnapshot {
    const coordination = this.coordinator?.status();
    const snapshot = buildStatus({
      version: VERSION,
      startedAt: this.startedAt,
      topology: this.topology,
      listeners: this.listeners,
      startups: this.startups,
      events: this.timeline.recent(),
      agentReports: this.agentReports,
      host: this.hostStatus,
    });
    const patroni = this.patroni?.status();
    return { ...snapshot, ...(coordination && { coordination }), ...(patroni && { patroni }) };
  }

  history(): HistorySnapshot {
    return this.recorder.snapshot();
  }

  ready(): boolean {
    return this.status().listeners.every((l) => l.hasCandidate);
  }

  setAdminState(backend: string, state: AdminState): void {
    const v = this.topology.get(backend);
    if (!v) throw new UnknownBackendError(backend);
    const from = v.adminState;
    // `ready` is also how an operator clears a fence after checking the server by hand.
    if (state === 'ready') this.topology.unfence(backend);
    this.topology.setAdminState(backend, state);
    if (from === state) return;
    const what = { ready: 'ready: takes new sessions', drain: 'draining: no new sessions, existing ones stay', maint: 'in maintenance: no traffic, sessions closed' }[state];
    this.timeline.add('info', `backend.${state}`, `backend ${backend} ${what}`, { backend, from, to: state });
    if (state === 'maint') {
      closeSessions(this.sessions(backend), 'maint', SqlState.ADMIN_SHUTDOWN, `terminating connection: pgwarden put server ${backend} in maintenance; reconnect to continue`);
    }
  }

  async switchover(to: string): Promise<SwitchoverResult> {
    if (!this.topology.get(to)) throw new UnknownBackendError(to);
    if (this.switching) return { ok: false, to, error: 'a switchover is already under way' };
    const from = this.topology.primary();
    this.timeline.add('info', 'switchover.start', `planned switchover ${from?.name ?? '(no primary)'} → ${to} started`, { backend: to, from: from?.name, to });
    this.switching = this.coordinator ? this.coordinator.switchover(to) : runSwitchover(
      {
        topology: this.topology,
        login: () => this.config,
        drainTimeout: () => this.config.failover.drainTimeout,
        sessionsOn: (b) => this.sessions(b),
        preSwitchover: (f, t) => this.hooks.preSwitchover({ oldPrimary: f, newPrimary: t }),
        recheck: (b) => this.checkers.get(b)?.poke('switchover'),
        progress: (m) => this.timeline.add('info', 'switchover.progress', m, { backend: to }),
      },
      to,
    );
    try {
      const r = await this.switching;
      this.bus.emit('switchover.done', { from: r.from, to, durationMs: r.durationMs ?? 0, ok: r.ok });
      if (r.ok && this.coordinator) {
        // The cluster's leader ran on_promote and post_switchover.
        this.timeline.add('info', 'switchover.done', `switchover ${r.from} → ${to} done on every member in ${r.durationMs} ms (${r.closedIdle} sessions closed idle, ${r.closedInTransaction} cut at drain_timeout)`, { backend: to, ...r });
      } else if (r.ok) {
        this.timeline.add('info', 'switchover.done', `switchover ${r.from} → ${to} done in ${r.durationMs} ms (${r.closedIdle} sessions closed idle, ${r.closedInTransaction} cut at drain_timeout)`, { backend: to, ...r });
        const ctx = { oldPrimary: this.endpoint(r.from), newPrimary: this.endpoint(to) };
        void this.hooks.run('on_promote', ctx);
        void this.hooks.run('post_switchover', ctx);
      } else {
        this.timeline.add('error', 'switchover.failed', `switchover to ${to} failed: ${r.error}`, { backend: to, ...r });
      }
      return r;
    } finally {
      this.switching = undefined;
    }
  }

  endpoint(name: string | undefined): Endpoint | undefined {
    const v = name === undefined ? undefined : this.topology.get(name);
    return v ? { name: v.name, host: v.config.host, port: v.config.port } : undefined;
  }

  reload(): Promise<ReloadResult> {
    return reload(this, this.opts.loadConfig);
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  /** Stop accepting, let sessions finish up to `timeoutMs`, then close what is left. */
  stop(timeoutMs = this.config.proxy.shutdownTimeout): Promise<void> {
    this.stopping ??= this.drainAndStop(timeoutMs);
    return this.stopping;
  }

  private async drainAndStop(timeoutMs: number): Promise<void> {
    // Stopping is not a failover: no promotion, no urgent checks from here on.
    this.primaryLoss.close();
    this.roleWatch.close();
    await Promise.all(this.listeners.map((l) => l.stopAccepting()));
    const open = this.sessions().length;
    if (open > 0) this.log.info({ event: 'shutdown.draining', sessions: open, timeoutMs }, 'waiting for sessions to finish');
    const bye = 'terminating connection: pgwarden is shutting down';
    const { leftAtDeadline } = await drainAtBoundaries({ sessions: () => this.sessions(), timeoutMs, pollMs: 100, reason: 'shutdown', idleMessage: bye, timeoutMessage: bye });
    if (leftAtDeadline > 0) this.log.warn({ event: 'shutdown.closed_sessions', sessions: leftAtDeadline }, 'closed sessions still open at shutdown_timeout');
    // Leaving the cluster last: the lease is revoked, so the others stop waiting for this member.
    await this.coordinator?.close();
    await this.patroni?.stop();
    for (const c of this.checkers.values()) c.stop();
    this.quietGc.stop();
    this.descriptors.close();
    this.recorder.stop();
    await this.observability?.close();
    await this.hooks.close();
  }

  // ---- construction (also used by reload) ----------------------------------------------------

  makeChecker(b: BackendConfig): HealthChecker {
    return backendChecker(b, {
      config: () => this.config,
      tlsFiles: () => this.tlsFiles,
      watchInterval: () => this.roleWatch.interval(),
      topology: this.topology,
      bus: this.bus,
      descriptors: this.descriptors,
    });
  }

  makeListener(l: ListenerConfig): Listener {
    const app = this;
    return new Listener(
      listenerContext(l, {
        topology: this.topology,
        bus: this.bus,
        log: this.log,
        cancels: this.cancels,
        authLookup: (this.authLookup ??= new AuthLookup({
          topology: this.topology,
          auth: () => app.config.auth,
          tls: () => app.config.tls,
          timeoutMs: () => app.config.proxy.connectTimeout,
        })),
        authMockKey: this.authMockKey,
        startups: this.startups,
        descriptors: this.descriptors,
        config: () => app.config,
        tlsFiles: () => app.tlsFiles,
        poke: (backend, reason) => this.checkers.get(backend)?.poke(reason),
        survive: this.survive,
        sessionOpened: () => this.quietGc.sessionOpened(),
        sessionClosed: () => this.quietGc.sessionClosed(),
        ...(this.coordinator && { cancelPeers: this.coordinator.cancelPeers() }),
      }),
      this.log,
    );
  }

  logListenerReady(l: Listener): void {
    const a = l.address();
    this.log.info({ event: 'listener.ready', listener: l.name, address: `${a.address}:${a.port}` }, `listener ${l.name} on ${a.address}:${a.port}`);
  }
}
