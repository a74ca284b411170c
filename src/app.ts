// Wires one running pgwarden: a Topology fed by one HealthChecker per backend, one Router and
// Listener per listener, the cancel registry, the event bus and timeline, and the operator's
// controls (AdminController). `start()` binds, `stop()` drains, `reload()` applies a new config.
import type { Config, BackendConfig, ListenerConfig } from './config/types';
import type { AdminController, AdminState, ReloadResult, StatusSnapshot, SwitchoverResult } from './admin/controller';
import { UnknownBackendError } from './admin/controller';
import { HealthChecker } from './health/checker';
import { postgresProbe } from './health/postgres-probe';
import { tcpProbe } from './health/tcp-probe';
import type { Probe } from './health/types';
import type { Logger } from './logger';
import { Bus } from './events';
import { Timeline } from './control/timeline';
import { buildStatus } from './control/status';
import { diffConfig } from './control/config-diff';
import { Topology, type StateChange } from './routing/topology';
import { Router } from './routing/router';
import { CancelRegistry, sendCancel, type CancelTarget } from './proxy/cancel-registry';
import { Listener } from './proxy/listener';
import type { ListenerContext } from './proxy/listener-context';
import type { CloseReason, Session } from './proxy/session';
import { HookRunner } from './hooks/runner';
import type { Endpoint } from './hooks/env';
import { runSwitchover } from './control/switchover';
import { PrimaryLoss } from './control/primary-loss';
import { PrimaryChangeTracker } from './control/primary-change';
import { IdleCloser } from './control/idle-closer';
import { startObservability, type Observability } from './control/observability';
import type { HostStatus } from './admin/controller';
import { setKeepaliveWarningSink } from './net/keepalive';
import { QuietGc, keepYoungGenerationSmall } from './control/quiet-gc';

const VERSION: string = require('../package.json').version;

export interface AppOptions {
  /** Re-reads the config for reload(); absent: reload() reports that there is no file. */
  loadConfig?: () => Config;
}

export class App implements AdminController {
  readonly bus = new Bus();
  readonly topology: Topology;
  readonly timeline: Timeline;
  readonly checkers = new Map<string, HealthChecker>();
  readonly listeners: Listener[] = [];
  private readonly cancels = new CancelRegistry();
  private readonly startedAt = new Date();
  private readonly quietGc = new QuietGc(5_000, (sessions, ms) =>
    this.log.debug({ event: 'memory.collected', sessions, ms: Math.round(ms) }, `collected the garbage of a burst of ${sessions} sessions opened or closed in ${Math.round(ms)} ms`),
  );
  private stopping?: Promise<void>;
  /** Latest host sample (set by the host sampler). */
  hostStatus?: HostStatus;
  private observability?: Observability;
  /** Agent reports per backend, for the status page (set by the agent wiring). */
  readonly agentReports = new Map<string, { at: number; reachable: boolean; raw?: string }>();

  hooks: HookRunner;
  private switching?: Promise<SwitchoverResult>;
  private readonly primaryLoss: PrimaryLoss;
  private readonly primaryChange = new PrimaryChangeTracker();

  constructor(public config: Config, readonly log: Logger, private readonly opts: AppOptions = {}) {
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
    });
    this.topology.on('state', (c: StateChange) => this.onBackendState(c));
    this.topology.on('primary', (p: { from?: string; to?: string }) => this.onPrimary(p));
    this.topology.on('fenced', (f: { backend: string; keep: string; timeline?: number; keeperTimeline?: number }) => this.onFenced(f));
    this.topology.on('unfenced', (f: { backend: string; reason: string }) =>
      this.timeline.add('info', 'backend.unfenced', `backend ${f.backend} is no longer fenced: ${f.reason}`, { backend: f.backend }),
    );
    for (const b of config.backends) this.checkers.set(b.name, this.makeChecker(b));
    for (const l of config.listeners) this.listeners.push(this.makeListener(l));
  }

  async start(): Promise<void> {
    keepYoungGenerationSmall();
    for (const c of this.checkers.values()) c.start();
    try {
      for (const l of this.listeners) await l.listen();
      this.observability = await startObservability(this);
      this.quietGc.started();
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

  /**
   * An agent's report (already combined per HAProxy rules): state and weight apply to routing;
   * an agent saying down or maint closes the backend's sessions like a failed health check.
   */
  applyAgentReport(backend: string, r: { state: 'up' | 'drain' | 'down' | 'maint'; weightPercent?: number }, previous: string, raw: string): void {
    this.topology.setAgent(backend, r);
    if (r.state === previous) return;
    const level = r.state === 'up' ? 'info' : 'warn';
    this.timeline.add(level, `agent.${r.state}`, `agent on ${backend} reports ${raw.trim() || r.state}`, { backend, state: r.state, weightPercent: r.weightPercent });
    if ((r.state === 'down' || r.state === 'maint') && this.config.failover.onDown === 'shutdown-sessions') {
      this.closeSessions(backend, r.state === 'down' ? 'down' : 'maint', '57P01', `terminating connection: the agent on ${backend} reports ${r.state}; reconnect to continue`);
    }
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
    return buildStatus({
      version: VERSION,
      startedAt: this.startedAt,
      topology: this.topology,
      listeners: this.listeners,
      events: this.timeline.recent(),
      agentReports: this.agentReports,
      host: this.hostStatus,
    });
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
      this.closeSessions(backend, 'maint', '57P01', `terminating connection: pgwarden put server ${backend} in maintenance; reconnect to continue`);
    }
  }

  async switchover(to: string): Promise<SwitchoverResult> {
    if (!this.topology.get(to)) throw new UnknownBackendError(to);
    if (this.switching) return { ok: false, to, error: 'a switchover is already under way' };
    const from = this.topology.primary();
    this.timeline.add('info', 'switchover.start', `planned switchover ${from?.name ?? '(no primary)'} → ${to} started`, { backend: to, from: from?.name, to });
    this.switching = runSwitchover(
      {
        topology: this.topology,
        health: () => this.config.health,
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
      if (r.ok) {
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

  private endpoint(name: string | undefined): Endpoint | undefined {
    const v = name === undefined ? undefined : this.topology.get(name);
    return v ? { name: v.name, host: v.config.host, port: v.config.port } : undefined;
  }

  async reload(): Promise<ReloadResult> {
    if (!this.opts.loadConfig) return { ok: false, error: 'no config file to reload (pgwarden was started without --config)' };
    let next: Config;
    try {
      next = this.opts.loadConfig();
    } catch (e) {
      const error = typeof (e as { format?: () => string }).format === 'function' ? (e as { format: () => string }).format() : (e as Error).message;
      this.timeline.add('error', 'config.reload', 'reload rejected: the running config stays', { ok: false, error });
      this.bus.emit('config.reload', { ok: false, changes: [], error });
      return { ok: false, error };
    }
    try {
      const changes = await this.applyConfig(next);
      this.timeline.add('info', 'config.reload', changes.length ? `reloaded: ${changes.join('; ')}` : 'reloaded: no changes', { ok: true, changes });
      this.bus.emit('config.reload', { ok: true, changes });
      return { ok: true, changes };
    } catch (e) {
      const error = (e as Error).message;
      this.timeline.add('error', 'config.reload', `reload failed: ${error}`, { ok: false, error });
      this.bus.emit('config.reload', { ok: false, changes: [], error });
      return { ok: false, error };
    }
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
    await Promise.all(this.listeners.map((l) => l.stopAccepting()));
    const open = () => this.sessions().length;
    const deadline = Date.now() + timeoutMs;
    if (open() > 0) this.log.info({ event: 'shutdown.draining', sessions: open(), timeoutMs }, 'waiting for sessions to finish');
    const idle = new IdleCloser();
    const bye = 'terminating connection: pgwarden is shutting down';
    while (open() > 0 && Date.now() < deadline) {
      idle.sweep(this.sessions(), (s) => s.closeAtBoundary('57P01', bye, 'shutdown'));
      await sleep(Math.min(100, Math.max(1, deadline - Date.now())));
    }
    const left = open();
    for (const s of this.sessions()) s.closeAtBoundary('57P01', bye, 'shutdown');
    if (left > 0) this.log.warn({ event: 'shutdown.closed_sessions', sessions: left }, 'closed sessions still open at shutdown_timeout');
    for (const c of this.checkers.values()) c.stop();
    this.quietGc.stop();
    await this.observability?.close();
    await this.hooks.close();
  }

  // ---- events ------------------------------------------------------------------------------

  private onBackendState(c: StateChange): void {
    const v = this.topology.get(c.backend);
    const detectionMs = c.to === 'down' && v?.firstFailureAt !== undefined ? Math.max(0, Date.now() - v.firstFailureAt) : undefined;
    this.bus.emit('backend.state', { backend: c.backend, from: c.from, to: c.to, ...(detectionMs !== undefined && { detectionMs }) });
    if (c.to === 'down') {
      this.timeline.add('warn', 'backend.down', `backend ${c.backend} is down${c.reason ? `: ${c.reason}` : ''}`, { backend: c.backend, from: c.from, to: c.to, role: c.role, reason: c.reason });
      if (c.from !== 'init') void this.hooks.run('on_backend_down', { backend: this.endpoint(c.backend) });
      if (this.config.failover.onDown === 'shutdown-sessions') {
        this.closeSessions(c.backend, 'down', '57P01', `terminating connection: server ${c.backend} failed (${c.reason ?? 'health check failed'}); pgwarden is switching, reconnect to continue`);
      }
    } else if (c.to === 'up') {
      this.timeline.add('info', 'backend.up', `backend ${c.backend} is up (${c.role ?? 'role unknown'})`, { backend: c.backend, from: c.from, to: c.to, role: c.role });
      if (c.from !== 'init') void this.hooks.run('on_backend_up', { backend: this.endpoint(c.backend) });
    }
  }

  private onPrimary(p: { from?: string; to?: string }): void {
    this.bus.emit('primary.changed', p);
    this.primaryLoss.onPrimary(p);
    const split = this.topology.splitBrainMembers();
    if (split.length > 1) {
      this.timeline.add('error', 'primary.split_brain', `split brain: ${split.join(', ')} all report primary; writes are held`, { backends: split });
    } else if (p.to) {
      this.timeline.add('info', 'primary.changed', p.from ? `primary changed from ${p.from} to ${p.to}` : `primary is ${p.to}`, { from: p.from, to: p.to, backend: p.to });
    } else {
      this.timeline.add('warn', 'primary.lost', `no primary${p.from ? ` (was ${p.from})` : ''}; new write sessions wait`, { from: p.from });
    }
    const change = this.primaryChange.observe(this.endpoint(p.to));
    if (change) void this.hooks.run('on_primary_change', change);
  }

  private onFenced(f: { backend: string; keep: string; timeline?: number; keeperTimeline?: number }): void {
    const v = this.topology.get(f.backend);
    this.timeline.add(
      'error',
      'backend.fenced',
      `split brain: ${f.backend} (timeline ${f.timeline ?? '?'}) and ${f.keep} (timeline ${f.keeperTimeline ?? '?'}) both accept writes; writes go to ${f.keep} only, ${f.backend} is fenced until it is back in recovery or cleared with \`pgwarden ready ${f.backend}\``,
      { backend: f.backend, keep: f.keep },
    );
    this.bus.emit('backend.fenced', { backend: f.backend, keep: f.keep });
    this.closeSessions(f.backend, 'fenced', '57P01', `terminating connection: server ${f.backend} was fenced (split brain); pgwarden routes writes to ${f.keep}, reconnect to continue`);
    if (v) void this.hooks.run('on_fence', { backend: this.endpoint(f.backend), newPrimary: this.endpoint(f.keep) });
  }

  /** Close the sessions of one backend: at a message boundary with a FATAL when possible. */
  private closeSessions(backend: string, reason: CloseReason, sqlstate: string, message: string): void {
    for (const s of this.sessions(backend)) s.closeAtBoundary(sqlstate, message, reason);
  }

  // ---- construction ------------------------------------------------------------------------

  private makeChecker(b: BackendConfig): HealthChecker {
    const h = this.config.health;
    let checker: HealthChecker | undefined;
    const probe: Probe =
      h.check === 'postgres'
        ? postgresProbe(
            { host: b.host, port: b.port, user: h.user, password: h.password, database: h.database, timeoutMs: h.timeout, userTimeoutMs: h.timeout * h.fall },
            { onConnectionLost: (reason) => checker?.poke(`check connection lost: ${reason}`) },
          )
        : tcpProbe(b.host, b.port, h.timeout, b.role ?? 'primary');
    checker = new HealthChecker({ backend: b, health: h, probe });
    checker.on('result', (status) => {
      this.topology.update(b.name, status);
      if (status.lastResult) this.bus.emit('check', { backend: b.name, result: status.lastResult });
    });
    return checker;
  }

  private makeListener(l: ListenerConfig): Listener {
    return new Listener(this.makeContext(l), this.log);
  }

  private makeContext(l: ListenerConfig): ListenerContext {
    const app = this;
    const log = this.log;
    const router = new Router(l, this.topology, () => this.config.failover, undefined, (waitMs, outcome) =>
      this.bus.emit('session.dequeued', { listener: l.name, waitMs, outcome }),
    );
    return {
      listener: l,
      router,
      topology: this.topology,
      cancels: this.cancels,
      // Read through the app so a reload's new settings apply to the next session.
      get tls() {
        return app.config.tls;
      },
      get proxy() {
        return app.config.proxy;
      },
      get failover() {
        return app.config.failover;
      },
      get health() {
        return app.config.health;
      },
      onConnectFailure: (backend, err) => {
        log.warn({ event: 'backend.connect_failed', listener: l.name, backend, layer: err.layer, err: err.message }, `connect to ${backend} failed; trying the next candidate`);
        this.checkers.get(backend)?.poke(`session connect failed: ${err.message}`);
      },
      onRedispatch: (backend, reason) =>
        log.info({ event: 'session.redispatched', listener: l.name, backend, reason }, `a session waiting for ${backend} to answer goes back to routing: pgwarden closed it (${reason})`),
      onSlowAnswer: (backend, ms) => {
        // Debug only: in a connection storm every new session of a busy server gets here.
        log.debug({ event: 'backend.slow_answer', listener: l.name, backend }, `${backend} accepted a connection and has not answered within ${ms} ms; checking it now`);
        this.checkers.get(backend)?.poke(`session startup unanswered for ${ms} ms`);
      },
      onRejected: (err) => {
        if (err.code === 'PGW_CLIENT_GONE') return;
        log.warn({ event: 'session.rejected', listener: l.name, code: err.code, sqlstate: err.sqlstate }, err.message);
        this.bus.emit('session.rejected', { listener: l.name, sqlstate: err.sqlstate, code: err.code });
      },
      onClientError: (sqlstate, message) => {
        log.info({ event: 'session.error', listener: l.name, sqlstate }, message);
        this.bus.emit('session.rejected', { listener: l.name, sqlstate, code: 'PGW_CLIENT_ERROR' });
      },
      onSessionStart: (backend) => {
        this.quietGc.sessionOpened();
        this.bus.emit('session.start', { listener: l.name, backend });
      },
      onSessionEnd: (end) => {
        this.quietGc.sessionClosed();
        log.info({ event: 'session.end', listener: l.name, ...end }, 'session closed');
        this.bus.emit('session.end', { listener: l.name, backend: end.backend, durationMs: end.durationMs, bytesFromClient: end.bytesFromClient, bytesToClient: end.bytesToClient });
      },
      onClosedByProxy: (backend, reason, inTransaction) =>
        this.bus.emit('session.closed_by_proxy', { listener: l.name, backend, reason, inTransaction }),
      cancelTargets: () => this.cancelTargets(l),
      sendCancel: (host, port, packet) => sendCancel(host, port, packet, this.config.proxy.connectTimeout),
    };
  }

  /**
   * Every backend this listener can route to: servers that are not down and whose role fits
   * the route (plus the primary when a replica route falls back to it). A session may outlive
   * its backend's candidacy (lag, weight), so candidacy itself is not the test.
   */
  private cancelTargets(l: ListenerConfig): CancelTarget[] {
    const fits = (role?: string) =>
      l.route === 'any' || role === undefined || role === l.route || (l.fallback === 'primary' && role === 'primary');
    return this.topology
      .backends()
      .filter((v) => v.state !== 'down' && fits(v.role))
      .map((v) => ({ backend: v.name, host: v.config.host, port: v.config.port }));
  }

  private logListenerReady(l: Listener): void {
    const a = l.address();
    this.log.info({ event: 'listener.ready', listener: l.name, address: `${a.address}:${a.port}` }, `listener ${l.name} on ${a.address}:${a.port}`);
  }

  // ---- reload ------------------------------------------------------------------------------

  /**
   * Apply a validated config: unchanged backends and their sessions are untouched; a removed
   * backend gets no new sessions and is forgotten once its sessions end; a changed listener is
   * rebound (its existing sessions continue on the old socket until they end).
   */
  private async applyConfig(next: Config): Promise<string[]> {
    const diff = diffConfig(this.config, next);
    // Bind new listeners (and changed ones on a new address) first: if an address is taken,
    // nothing has changed yet and the running config stays.
    const fresh: Listener[] = [];
    const rebind = diff.listeners.changed.filter((l) => {
      const old = this.listeners.find((x) => x.name === l.name)!;
      return old.config.host !== l.host || old.config.port !== l.port;
    });
    const prev = this.config;
    this.config = next;
    try {
      for (const l of [...diff.listeners.added, ...rebind]) {
        const listener = this.makeListener(l);
        fresh.push(listener);
        await listener.listen();
      }
    } catch (e) {
      this.config = prev;
      for (const l of fresh) await l.stopAccepting();
      throw e;
    }
    for (const l of diff.listeners.changed) if (!rebind.includes(l)) this.listeners.find((x) => x.name === l.name)!.reconfigure(l);
    for (const name of [...diff.listeners.removed, ...rebind.map((l) => l.name)]) {
      const i = this.listeners.findIndex((x) => x.name === name);
      if (i < 0) continue;
      const [old] = this.listeners.splice(i, 1);
      void old.stopAccepting();
      // Its sessions continue and close on their own; keep them visible until then.
      if (old.sessions.size > 0) this.retired.add(old);
    }
    for (const l of fresh) {
      this.listeners.push(l);
      this.logListenerReady(l);
    }

    for (const name of diff.backends.removed) {
      this.checkers.get(name)?.stop();
      this.checkers.delete(name);
      this.topology.setAdminState(name, 'drain');
      this.forgetWhenIdle(name);
    }
    for (const b of diff.backends.changed) {
      const before = this.topology.get(b.name)?.config;
      this.topology.replaceConfig(b);
      if (before && (before.host !== b.host || before.port !== b.port)) {
        this.closeSessions(b.name, 'reload', '57P01', `terminating connection: server ${b.name} moved to ${b.host}:${b.port} (pgwarden config reload)`);
      }
    }
    for (const b of diff.backends.added) this.topology.add(b);
    // New hook lists apply to the next event; runs in progress finish under the old runner.
    if (diff.summary.includes('hooks settings changed')) this.hooks = new HookRunner(next.hooks, { log: this.log, bus: this.bus });
    // Checkers: restart those whose backend changed, all of them when health settings changed.
    const restart = diff.health ? next.backends.map((b) => b.name) : [...diff.backends.changed, ...diff.backends.added].map((b) => b.name);
    for (const name of restart) {
      this.checkers.get(name)?.stop();
      const b = next.backends.find((x) => x.name === name)!;
      const c = this.makeChecker(b);
      this.checkers.set(name, c);
      c.start();
    }
    return diff.summary;
  }

  /** Listeners removed by a reload whose sessions have not ended yet. */
  private readonly retired = new Set<Listener>();

  private forgetWhenIdle(name: string): void {
    const check = () => {
      if (this.sessions(name).length > 0) return;
      clearInterval(timer);
      this.topology.remove(name);
    };
    const timer = setInterval(check, 500);
    timer.unref();
    check();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
