// Wires one running pgwarden: a Topology fed by one HealthChecker per backend, one Router and
// Listener per listener, the cancel registry and the logs. `start()` binds, `stop()` drains.
import type { Config, BackendConfig } from './config/types';
import { HealthChecker } from './health/checker';
import { postgresProbe } from './health/postgres-probe';
import { tcpProbe } from './health/tcp-probe';
import type { Probe } from './health/types';
import type { Logger } from './logger';
import { Topology, describeFailure } from './routing/topology';
import { Router } from './routing/router';
import { CancelRegistry, sendCancel, type CancelTarget } from './proxy/cancel-registry';
import { Listener } from './proxy/listener';
import type { ListenerContext } from './proxy/listener-context';

export class App {
  readonly topology: Topology;
  readonly checkers = new Map<string, HealthChecker>();
  readonly listeners: Listener[] = [];
  private readonly cancels = new CancelRegistry();
  private stopping?: Promise<void>;

  constructor(readonly config: Config, private readonly log: Logger) {
    this.topology = new Topology(config.backends, config.health);
    this.topology.on('state', (c) => {
      const level = c.to === 'down' ? 'warn' : 'info';
      log[level]({ event: c.to === 'up' ? 'backend.up' : c.to === 'down' ? 'backend.down' : 'backend.state', backend: c.backend, from: c.from, to: c.to, role: c.role, reason: c.reason }, `backend ${c.backend} is ${c.to}`);
    });
    this.topology.on('primary', (p: { from?: string; to?: string }) => {
      const split = this.topology.splitBrainMembers();
      if (split.length > 1) log.error({ event: 'primary.split_brain', backends: split }, `split brain: ${split.join(', ')} all report primary; writes are held`);
      else if (p.to) log.info({ event: 'primary.changed', from: p.from, to: p.to }, `primary is ${p.to}`);
      else log.warn({ event: 'primary.lost', from: p.from }, 'no primary');
    });
    for (const b of config.backends) this.checkers.set(b.name, this.makeChecker(b));
    for (const l of config.listeners) this.listeners.push(new Listener(this.makeContext(l), log));
  }

  async start(): Promise<void> {
    for (const c of this.checkers.values()) c.start();
    try {
      for (const l of this.listeners) await l.listen();
    } catch (e) {
      await this.stop(0);
      throw e;
    }
    for (const l of this.listeners) {
      const a = l.address();
      this.log.info({ event: 'listener.ready', listener: l.name, address: `${a.address}:${a.port}` }, `listener ${l.name} on ${a.address}:${a.port}`);
    }
  }

  listener(name: string): Listener {
    const l = this.listeners.find((x) => x.name === name);
    if (!l) throw new Error(`no listener named ${name}`);
    return l;
  }

  /** Stop accepting, let sessions finish up to `timeoutMs`, then close what is left. */
  stop(timeoutMs = this.config.proxy.shutdownTimeout): Promise<void> {
    this.stopping ??= this.drainAndStop(timeoutMs);
    return this.stopping;
  }

  private async drainAndStop(timeoutMs: number): Promise<void> {
    await Promise.all(this.listeners.map((l) => l.stopAccepting()));
    const open = () => this.listeners.reduce((n, l) => n + l.sessions.size, 0);
    const deadline = Date.now() + timeoutMs;
    if (open() > 0) this.log.info({ event: 'shutdown.draining', sessions: open(), timeoutMs }, 'waiting for sessions to finish');
    while (open() > 0 && Date.now() < deadline) await sleep(Math.min(100, deadline - Date.now()));
    const left = open();
    for (const l of this.listeners) for (const s of [...l.sessions]) s.terminate('57P01', 'pgwarden is shutting down');
    if (left > 0) this.log.warn({ event: 'shutdown.closed_sessions', sessions: left }, 'closed sessions still open at shutdown_timeout');
    for (const c of this.checkers.values()) c.stop();
  }

  private makeChecker(b: BackendConfig): HealthChecker {
    const h = this.config.health;
    let checker: HealthChecker | undefined;
    const probe: Probe =
      h.check === 'postgres'
        ? postgresProbe(
            { host: b.host, port: b.port, user: h.user, password: h.password, database: h.database, timeoutMs: h.timeout },
            { onConnectionLost: (reason) => checker?.poke(`check connection lost: ${reason}`) },
          )
        : tcpProbe(b.host, b.port, h.timeout, b.role ?? 'primary');
    checker = new HealthChecker({ backend: b, health: h, probe });
    checker.on('result', (status) => this.topology.update(b.name, status));
    return checker;
  }

  private makeContext(l: Config['listeners'][number]): ListenerContext {
    const log = this.log;
    const router = new Router(l, this.topology, this.config.failover);
    return {
      listener: l,
      router,
      topology: this.topology,
      cancels: this.cancels,
      tls: this.config.tls,
      proxy: this.config.proxy,
      failover: this.config.failover,
      health: this.config.health,
      onConnectFailure: (backend, err) => {
        log.warn({ event: 'backend.connect_failed', listener: l.name, backend, layer: err.layer, err: err.message }, `connect to ${backend} failed; trying the next candidate`);
        this.checkers.get(backend)?.poke(`session connect failed: ${err.message}`);
      },
      onRejected: (err) => {
        if (err.code === 'PGW_CLIENT_GONE') return;
        log.warn({ event: 'session.rejected', listener: l.name, code: err.code, sqlstate: err.sqlstate }, err.message);
      },
      onClientError: (sqlstate, message) => log.info({ event: 'session.error', listener: l.name, sqlstate }, message),
      onSessionEnd: (end) => log.info({ event: 'session.end', listener: l.name, ...end }, 'session closed'),
      cancelTargets: () => this.cancelTargets(l),
      sendCancel: (host, port, packet) => sendCancel(host, port, packet, this.config.proxy.connectTimeout),
    };
  }

  /**
   * Every backend this listener can route to: servers that are not down and whose role fits
   * the route (plus the primary when a replica route falls back to it). A session may outlive
   * its backend's candidacy (lag, weight), so candidacy itself is not the test.
   */
  private cancelTargets(l: Config['listeners'][number]): CancelTarget[] {
    const fits = (role?: string) =>
      l.route === 'any' || role === undefined || role === l.route || (l.fallback === 'primary' && role === 'primary');
    return this.topology
      .backends()
      .filter((v) => v.state !== 'down' && fits(v.role))
      .map((v) => ({ backend: v.name, host: v.config.host, port: v.config.port }));
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

export { describeFailure };
