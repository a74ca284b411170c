// `health.patroni`: pgwarden in front of Patroni drains a member before Patroni takes it away,
// instead of finding out from failed checks and failed transactions.
//
// Two sources, one overlay (Topology.patroniDrain, never the operator's adminState):
// - REST: every `interval`, GET /patroni on each backend's host. A member Patroni is demoting,
//   stopping, restarting or starting (patroni-rest.ts, patroniDrainReason) is drained. An
//   unanswered request only logs: the SQL checks stay the judge of health.
// - DCS (optional, etcd v3; patroni-switchover.ts): the `failover` key appears the moment a
//   switchover is requested, before the leader's CHECKPOINT and fast shutdown, and the current
//   leader is drained at once; that drain clears itself when Patroni is done.
// While the overlay holds, new sessions go elsewhere or wait in the queue (a drained primary:
// the no-primary queue), and the backend's sessions are closed at their transaction boundary
// with the routine a planned switchover uses (drain.ts), so nothing is left on the server when
// Patroni stops it; sessions still waiting for its first answer go back to the queue.
import { readFileSync } from 'node:fs';
import { realClock, type Clock } from '../clock';
import type { Config, PatroniConfig } from '../config/types';
import { TlsFilesError } from '../errors';
import { patroniDrainReason, patroniGet, type PatroniMember, type PatroniTarget } from '../health/patroni-rest';
import type { Logger } from '../logger';
import type { Session } from '../proxy/session';
import type { PatroniClusterStatus } from '../routing/status-snapshot';
import type { Topology } from '../routing/topology';
import { drainAtBoundaries } from './drain';
import { PatroniSwitchoverWatch, type DcsSource } from './patroni-switchover';
import type { Timeline } from './timeline';

export { SCHEDULED_LEAD_MS, type DcsSource } from './patroni-switchover';

const DRAIN_POLL_MS = 50;

export interface PatroniWatchDeps {
  topology: Topology;
  timeline: Timeline;
  log: Logger;
  /** The running config: a reload replaces it, so it is read each time. */
  config(): Config;
  sessions(backend: string): Session[];
  /** Absent: no `dcs` configured. */
  dcs?: DcsSource;
  /** One GET /patroni (tests may replace it). */
  get?: (target: PatroniTarget) => Promise<PatroniMember>;
  /** Timers (a FakeClock in tests); default real time. */
  clock?: Clock;
}

function summary(m: PatroniMember): string {
  if (!m.reachable) return 'unreachable';
  const extras = [m.pendingRestart && 'pending restart', m.noFailover && 'nofailover', m.pause && 'paused', m.scheduledRestartAt !== undefined && 'restart scheduled'].filter(Boolean);
  return `${m.role ?? '?'} ${m.state ?? '?'}${m.timeline !== undefined ? ` timeline ${m.timeline}` : ''}${extras.length > 0 ? ` (${extras.join(', ')})` : ''}`;
}

export class PatroniWatch {
  private readonly get: (target: PatroniTarget) => Promise<PatroniMember>;
  private readonly clock: Clock;
  private readonly switchover: PatroniSwitchoverWatch | undefined;
  private readonly restReasons = new Map<string, string>();
  private readonly polling = new Set<string>();
  private readonly draining = new Set<string>();
  private pollTimer: { clear(): void } | undefined;
  private stopped = false;
  private readonly onPrimary = (): void => this.switchover?.maybeEnd();

  constructor(private readonly deps: PatroniWatchDeps, private readonly ca?: Buffer) {
    this.get = deps.get ?? patroniGet;
    this.clock = deps.clock ?? realClock;
    if (deps.dcs) {
      this.switchover = new PatroniSwitchoverWatch({
        topology: deps.topology,
        timeline: deps.timeline,
        log: deps.log,
        config: deps.config,
        dcs: deps.dcs,
        clock: this.clock,
        changed: (backend) => this.refresh(backend),
      });
    }
  }

  /** Reads `ca_file` once, like tls.server_ca_file: a file that cannot be read is a startup error (TlsFilesError, exit 2). */
  static create(deps: PatroniWatchDeps): PatroniWatch {
    const caFile = deps.config().health.patroni?.caFile;
    if (caFile === undefined) return new PatroniWatch(deps);
    try {
      return new PatroniWatch(deps, readFileSync(caFile));
    } catch (e) {
      throw new TlsFilesError([{ path: 'health.patroni.ca_file', message: `cannot read ${caFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` }]);
    }
  }

  start(): void {
    this.deps.topology.on('primary', this.onPrimary);
    this.pollAll();
    this.switchover?.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.deps.topology.off('primary', this.onPrimary);
    this.pollTimer?.clear();
    await this.switchover?.stop();
  }

  /** The DCS part of /status (the REST part is per backend). */
  status(): PatroniClusterStatus {
    return this.switchover?.status() ?? {};
  }

  private settings(): PatroniConfig | undefined {
    return this.deps.config().health.patroni;
  }

  // ---- REST ------------------------------------------------------------------------------

  private pollAll(): void {
    if (this.stopped) return;
    const p = this.settings();
    if (p === undefined && this.restReasons.size > 0) {
      // A reload removed health.patroni: what its REST API said no longer drains anything.
      const names = [...this.restReasons.keys()];
      this.restReasons.clear();
      for (const name of names) this.refresh(name);
    }
    if (p !== undefined) {
      for (const v of this.deps.topology.backends()) {
        if (this.polling.has(v.name)) continue; // the previous answer is still coming
        this.polling.add(v.name);
        const target: PatroniTarget = { host: v.config.host, port: v.config.patroniPort ?? p.port, scheme: p.scheme, timeoutMs: p.timeout, ...(this.ca && { ca: this.ca }) };
        void this.get(target)
          .then((m) => this.applyRest(v.name, m))
          .catch((err: Error) => this.deps.log.error({ event: 'patroni.internal_error', backend: v.name, err }, `internal error applying Patroni's answer for ${v.name}: ${err.message}`))
          .finally(() => this.polling.delete(v.name));
      }
    }
    this.pollTimer = this.clock.setTimeout(() => this.pollAll(), p?.interval ?? this.deps.config().health.interval);
  }

  /** Apply one answer of GET /patroni. */
  private applyRest(backend: string, m: PatroniMember): void {
    if (this.stopped || this.deps.topology.get(backend) === undefined) return;
    const before = this.deps.topology.get(backend)?.patroni;
    const known = m.name ?? (m.reachable ? this.switchover?.memberName(backend) : undefined);
    this.deps.topology.setPatroni(backend, { ...m, ...(known !== undefined && { name: known }), at: Date.now() });
    const was = before === undefined ? undefined : summary(before);
    const is = summary(m);
    if (was !== is) {
      // State changes only, never every poll.
      if (m.reachable) this.deps.log.info({ event: 'patroni.member', backend, member: m.name, role: m.role, state: m.state, timeline: m.timeline, pendingRestart: m.pendingRestart, noFailover: m.noFailover, pause: m.pause }, `Patroni on ${backend}: ${is}${was ? ` (was ${was})` : ''}`);
      else this.deps.log.warn({ event: 'patroni.unreachable', backend, error: m.error }, `Patroni's REST API on ${backend} does not answer (${m.error}); the SQL checks alone decide`);
    }
    const reason = patroniDrainReason(m, this.clock.now());
    if (reason === undefined) this.restReasons.delete(backend);
    else this.restReasons.set(backend, reason);
    this.refresh(backend);
  }

  // ---- the overlay -------------------------------------------------------------------------

  private refresh(backend: string): void {
    const reason = this.switchover?.reasonFor(backend) ?? this.restReasons.get(backend);
    const before = this.deps.topology.get(backend)?.patroniDrain;
    if (!this.deps.topology.setPatroniDrain(backend, reason)) return;
    if (reason !== undefined && before === undefined) {
      this.deps.timeline.add('warn', 'patroni.drain', `backend ${backend} is draining: ${reason}; no new sessions, its sessions close at their transaction boundary`, { backend, reason });
      this.drain(backend);
    } else if (reason === undefined) {
      this.deps.timeline.add('info', 'patroni.ready', `backend ${backend} takes new sessions again (${before})`, { backend });
    }
    if (reason === undefined || before === undefined) this.switchover?.maybeEnd();
  }

  /** Close the backend's sessions at their transaction boundaries while the overlay holds (up to drain_timeout). */
  private drain(backend: string): void {
    if (this.draining.has(backend)) return;
    this.draining.add(backend);
    const holds = () => !this.stopped && this.deps.topology.get(backend)?.patroniDrain !== undefined;
    const why = () => this.deps.topology.get(backend)?.patroniDrain ?? 'Patroni is taking it away';
    void drainAtBoundaries({
      sessions: () => (holds() ? this.deps.sessions(backend) : []),
      timeoutMs: this.deps.config().failover.drainTimeout,
      pollMs: DRAIN_POLL_MS,
      reason: 'patroni',
      // A session still waiting for the server's first answer has seen nothing of it: it goes
      // back to the queue rather than start a transaction Patroni's fast shutdown would end.
      rerouteUnanswered: true,
      idleMessage: `terminating connection: ${why()} on server ${backend}; reconnect to continue`,
      timeoutMessage: `terminating connection: ${why()} on server ${backend}: drain_timeout reached`,
      ...(this.deps.clock && { clock: this.deps.clock }),
    })
      .then((r) => {
        if (r.closedInTransaction > 0) this.deps.log.warn({ event: 'patroni.drain_timeout', backend, ...r }, `${r.closedInTransaction} sessions on ${backend} were still in a transaction at drain_timeout and were closed`);
      })
      .finally(() => this.draining.delete(backend));
  }
}
