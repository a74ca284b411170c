// `health.patroni`: pgwarden in front of Patroni drains a member before Patroni takes it away,
// instead of finding out from failed checks and failed transactions.
//
// Two sources, one overlay (Topology.patroniDrain, never the operator's adminState):
// - REST: every `interval`, GET /patroni on each backend's host. A member Patroni is demoting,
//   stopping, restarting or starting (patroni-rest.ts, patroniDrainReason) is drained. An
//   unanswered request only logs: the SQL checks stay the judge of health.
// - DCS (optional, etcd v3): the `failover` key appears the moment a switchover is requested,
//   before the leader's CHECKPOINT and fast shutdown. The current leader is drained at once
//   (SCHEDULED_LEAD_MS before scheduled_at for a scheduled one): new write sessions wait in the
//   no-primary queue, sessions on it close at their transaction boundary, so nothing is left on
//   it when Patroni stops it. The drain clears itself once the key is gone (or `{}`) and either
//   the leader key still names the old
//   leader (cancelled or refused) or pgwarden no longer routes writes to it (it moved on). A
//   read or watch that fails logs once; no new advance drain starts while etcd is silent, and
//   one under way is dropped after drain_timeout of silence: REST and SQL decide alone.
// Draining closes sessions with the same routine as a planned switchover (drain.ts).
import { readFileSync } from 'node:fs';
import type { Clock } from '../clock';
import type { Config, PatroniConfig } from '../config/types';
import type { PatroniDcsView, PatroniFailoverKey } from '../coordination/patroni-dcs';
import { patroniDrainReason, patroniGet, type PatroniMember, type PatroniTarget } from '../health/patroni-rest';
import type { Logger } from '../logger';
import type { Session } from '../proxy/session';
import type { PatroniClusterStatus } from '../routing/status-snapshot';
import type { Topology } from '../routing/topology';
import { drainAtBoundaries } from './drain';
import { TlsFilesError } from '../errors';
import type { Timeline } from './timeline';

const DRAIN_POLL_MS = 50;
/**
 * A scheduled switchover is drained this long before its time: Patroni acts at scheduled_at
 * (its HA loop sleeps until then), and the drain must be under way before its CHECKPOINT.
 */
export const SCHEDULED_LEAD_MS = 2_000;

/** Patroni's DCS as the watch needs it (coordination/patroni-dcs.ts PatroniDcs is one). */
export interface DcsSource {
  read(): Promise<PatroniDcsView>;
  watch(onChange: () => void): () => void;
  close(): Promise<void>;
}

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

interface DcsDrain {
  readonly backend: string;
  /** Patroni's name of the leader being moved, when known. */
  readonly member?: string;
  readonly failover: PatroniFailoverKey;
  readonly reason: string;
}

function summary(m: PatroniMember): string {
  if (!m.reachable) return 'unreachable';
  const extras = [m.pendingRestart && 'pending restart', m.noFailover && 'nofailover', m.pause && 'paused', m.scheduledRestartAt !== undefined && 'restart scheduled'].filter(Boolean);
  return `${m.role ?? '?'} ${m.state ?? '?'}${m.timeline !== undefined ? ` timeline ${m.timeline}` : ''}${extras.length > 0 ? ` (${extras.join(', ')})` : ''}`;
}

export class PatroniWatch {
  private readonly get: (target: PatroniTarget) => Promise<PatroniMember>;
  private readonly ca: Buffer | undefined;
  private readonly restReasons = new Map<string, string>();
  /** Backend → Patroni member name, from the DCS members' conn_url (Patroni 3.0 does not name itself in GET /patroni). */
  private readonly dcsNames = new Map<string, string>();
  private readonly polling = new Set<string>();
  private readonly draining = new Set<string>();
  private pollTimer: { clear(): void } | undefined;
  private dcsTimer: { clear(): void } | undefined;
  private scheduledTimer: { clear(): void } | undefined;
  private dropTimer: { clear(): void } | undefined;
  private stopWatch: (() => void) | undefined;
  private dcsView: PatroniDcsView | undefined;
  private dcsDrain: DcsDrain | undefined;
  /** undefined until the first read; then whether the last one worked. */
  private dcsReachable: boolean | undefined;
  private dcsError: string | undefined;
  private reading = false;
  private readAgain = false;
  private stopped = false;
  private readonly onPrimary = (): void => this.maybeEndDcsDrain();

  constructor(private readonly deps: PatroniWatchDeps, ca?: Buffer) {
    this.get = deps.get ?? patroniGet;
    this.ca = ca;
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
    if (this.deps.dcs) {
      this.stopWatch = this.deps.dcs.watch(() => this.readDcs());
      this.readDcs();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.deps.topology.off('primary', this.onPrimary);
    for (const t of [this.pollTimer, this.dcsTimer, this.scheduledTimer, this.dropTimer]) t?.clear();
    this.stopWatch?.();
    await this.deps.dcs?.close().catch(() => undefined);
  }

  /** The DCS part of /status (the REST part is per backend). */
  status(): PatroniClusterStatus {
    const dcs = this.deps.dcs === undefined ? undefined : this.settings()?.dcs;
    if (dcs === undefined) return {};
    const f = this.dcsView?.failover;
    return {
      dcs: {
        key: `${dcs.namespace}/${dcs.scope}/failover`,
        reachable: this.dcsReachable === true,
        ...(this.dcsError !== undefined && { error: this.dcsError }),
        ...(this.dcsView?.leader !== undefined && { leader: this.dcsView.leader }),
        ...(f && {
          failover: {
            ...(f.leader !== undefined && { leader: f.leader }),
            ...(f.candidate !== undefined && { candidate: f.candidate }),
            ...(f.scheduledAt !== undefined && { scheduledAt: new Date(f.scheduledAt).toISOString() }),
          },
        }),
        ...(this.dcsDrain && { draining: this.dcsDrain.backend }),
      },
    };
  }

  private settings(): PatroniConfig | undefined {
    return this.deps.config().health.patroni;
  }

  private now(): number {
    return this.deps.clock?.now() ?? Date.now();
  }

  private later(fn: () => void, ms: number): { clear(): void } {
    if (this.deps.clock) return this.deps.clock.setTimeout(fn, ms);
    const handle = setTimeout(fn, Math.max(0, ms));
    handle.unref();
    return { clear: () => clearTimeout(handle) };
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
    this.pollTimer = this.later(() => this.pollAll(), p?.interval ?? this.deps.config().health.interval);
  }

  /** Apply one answer of GET /patroni. */
  private applyRest(backend: string, m: PatroniMember): void {
    if (this.stopped || this.deps.topology.get(backend) === undefined) return;
    const before = this.deps.topology.get(backend)?.patroni;
    const known = m.name ?? (m.reachable ? this.dcsNames.get(backend) : undefined);
    this.deps.topology.setPatroni(backend, { ...m, ...(known !== undefined && { name: known }), at: Date.now() });
    const was = before === undefined ? undefined : summary(before);
    const is = summary(m);
    if (was !== is) {
      // State changes only, never every poll.
      if (m.reachable) this.deps.log.info({ event: 'patroni.member', backend, member: m.name, role: m.role, state: m.state, timeline: m.timeline, pendingRestart: m.pendingRestart, noFailover: m.noFailover, pause: m.pause }, `Patroni on ${backend}: ${is}${was ? ` (was ${was})` : ''}`);
      else this.deps.log.warn({ event: 'patroni.unreachable', backend, error: m.error }, `Patroni's REST API on ${backend} does not answer (${m.error}); the SQL checks alone decide`);
    }
    const reason = patroniDrainReason(m, this.now());
    if (reason === undefined) this.restReasons.delete(backend);
    else this.restReasons.set(backend, reason);
    this.refresh(backend);
  }

  // ---- DCS -------------------------------------------------------------------------------

  private readDcs(): void {
    if (this.stopped || this.deps.dcs === undefined) return;
    if (this.reading) {
      this.readAgain = true;
      return;
    }
    this.reading = true;
    this.dcsTimer?.clear();
    this.deps.dcs
      .read()
      .then(
        (view) => {
          if (this.dcsReachable !== true) this.deps.log.info({ event: 'patroni.dcs_reachable' }, `Patroni's DCS answers: watching ${this.status().dcs?.key}`);
          this.dcsReachable = true;
          this.dcsError = undefined;
          this.dropTimer?.clear();
          this.dropTimer = undefined;
          this.onDcs(view);
        },
        (err: Error) => this.dcsFailed(err.message),
      )
      .finally(() => {
        this.reading = false;
        if (this.stopped) return;
        if (this.readAgain) {
          this.readAgain = false;
          this.readDcs();
          return;
        }
        // The watch is the fast path; this read is the backstop for a watch that missed a change.
        this.dcsTimer = this.later(() => this.readDcs(), this.settings()?.interval ?? 1_000);
      });
  }

  private dcsFailed(message: string): void {
    if (this.dcsReachable !== false) {
      this.deps.log.warn({ event: 'patroni.dcs_unreachable', error: message }, `Patroni's DCS does not answer (${message}): no advance drain on a switchover until it does; REST and SQL checks decide`);
    }
    this.dcsReachable = false;
    this.dcsError = message;
    // A switchover already seen goes on without us: one slow read must not route sessions back
    // to a leader Patroni is about to stop. Only an etcd silent for drain_timeout drops it.
    if (this.dcsDrain && this.dropTimer === undefined) {
      this.dropTimer = this.later(() => {
        this.dropTimer = undefined;
        if (this.dcsReachable === false) this.endDcsDrain(`Patroni's DCS has not answered for ${this.deps.config().failover.drainTimeout} ms (${this.dcsError})`);
      }, this.deps.config().failover.drainTimeout);
    }
  }

  private onDcs(view: PatroniDcsView): void {
    this.dcsView = view;
    for (const [member, address] of view.members) {
      const v = this.deps.topology.backends().find((b) => b.config.host === address.host && b.config.port === address.port);
      if (v === undefined) continue;
      this.dcsNames.set(v.name, member);
      if (v.patroni?.reachable && v.patroni.name === undefined) this.deps.topology.setPatroni(v.name, { ...v.patroni, name: member });
    }
    this.scheduledTimer?.clear();
    this.scheduledTimer = undefined;
    const f = view.failover;
    const due = f !== undefined && this.isDue(f);
    if (f !== undefined && !due) {
      // Act shortly before scheduled_at: read again then (the key may have been cancelled by then).
      this.scheduledTimer = this.later(() => this.readDcs(), f.scheduledAt! - SCHEDULED_LEAD_MS - this.now());
    }
    if (due && this.dcsDrain === undefined) this.beginDcsDrain(view, f);
    else this.maybeEndDcsDrain();
  }

  private isDue(f: PatroniFailoverKey): boolean {
    return f.scheduledAt === undefined || f.scheduledAt - SCHEDULED_LEAD_MS <= this.now();
  }

  /** The backend of a Patroni member: by the name its REST API reported, its conn_url, or the same name. */
  private backendOf(member: string | undefined, view: PatroniDcsView): string | undefined {
    if (member === undefined) return undefined;
    const backends = this.deps.topology.backends();
    const byRest = backends.find((v) => v.patroni?.name === member);
    if (byRest) return byRest.name;
    const address = view.members.get(member);
    const byAddress = address && backends.find((v) => v.config.host === address.host && v.config.port === address.port);
    if (byAddress) return byAddress.name;
    return backends.find((v) => v.name === member)?.name;
  }

  private beginDcsDrain(view: PatroniDcsView, f: PatroniFailoverKey): void {
    // Patroni demotes the member holding the leader key, whatever the request names.
    const member = view.leader ?? f.leader;
    const backend = this.backendOf(member, view) ?? this.deps.topology.primary()?.name;
    if (backend === undefined) {
      this.deps.log.warn({ event: 'patroni.switchover_unmapped', member, candidate: f.candidate }, `Patroni switchover requested from ${member ?? 'an unknown leader'}, which is none of the backends, and pgwarden has no primary: nothing to drain`);
      return;
    }
    const to = f.candidate ?? 'a replica Patroni picks';
    const reason = `Patroni switchover from ${member ?? backend} to ${to} requested`;
    this.dcsDrain = { backend, ...(member !== undefined && { member }), failover: f, reason };
    this.deps.timeline.add('info', 'patroni.switchover', `Patroni was asked to move the leader from ${member ?? backend} to ${to}: draining ${backend} before Patroni stops it`, { backend, member, candidate: f.candidate });
    this.refresh(backend);
  }

  /** The key is gone and Patroni either kept the leader or pgwarden has moved its writes on. */
  private maybeEndDcsDrain(): void {
    const d = this.dcsDrain;
    if (d === undefined) return;
    const f = this.dcsView?.failover;
    if (f !== undefined && this.isDue(f)) return; // still under way
    if (d.member !== undefined && this.dcsView?.leader === d.member) {
      this.endDcsDrain(`Patroni kept ${d.member} as the leader (the switchover was cancelled or refused)`);
    } else if (this.deps.topology.primary()?.name !== d.backend) {
      this.endDcsDrain(`Patroni's switchover is over and ${d.backend} no longer takes writes`);
    }
  }

  private endDcsDrain(why: string): void {
    const d = this.dcsDrain;
    if (d === undefined) return;
    this.dcsDrain = undefined;
    this.deps.timeline.add('info', 'patroni.switchover_end', `${why}: the advance drain of ${d.backend} ends`, { backend: d.backend });
    this.refresh(d.backend);
  }

  // ---- the overlay -------------------------------------------------------------------------

  private refresh(backend: string): void {
    const reason = this.dcsDrain?.backend === backend ? this.dcsDrain.reason : this.restReasons.get(backend);
    const before = this.deps.topology.get(backend)?.patroniDrain;
    if (!this.deps.topology.setPatroniDrain(backend, reason)) return;
    if (reason !== undefined && before === undefined) {
      this.deps.timeline.add('warn', 'patroni.drain', `backend ${backend} is draining: ${reason}; no new sessions, its sessions close at their transaction boundary`, { backend, reason });
      this.drain(backend);
    } else if (reason === undefined) {
      this.deps.timeline.add('info', 'patroni.ready', `backend ${backend} takes new sessions again (${before})`, { backend });
    }
    if (reason === undefined || before === undefined) this.maybeEndDcsDrain();
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
