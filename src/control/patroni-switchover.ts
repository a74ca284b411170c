// `health.patroni.dcs`: the switchover announced in Patroni's DCS, for PatroniWatch
// (patroni-watch.ts), which owns the drain overlay. The `failover` key names a leader or a
// candidate from the moment `patronictl switchover` is asked until Patroni has done or dropped
// it; the member holding the leader key is then drained in advance (SCHEDULED_LEAD_MS before
// scheduled_at for a scheduled one). That drain ends once the key is gone (or `{}`) and either
// the leader key still names the old leader (cancelled or refused) or pgwarden no longer routes
// writes to it. A read or watch that fails logs once; no new advance drain starts while etcd is
// silent, and one under way is dropped after drain_timeout of silence.
import type { Clock } from '../clock';
import type { Config } from '../config/types';
import type { PatroniDcsView, PatroniFailoverKey } from '../coordination/patroni-dcs';
import type { Logger } from '../logger';
import type { PatroniClusterStatus } from '../routing/status-snapshot';
import type { Topology } from '../routing/topology';
import type { Timeline } from './timeline';

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

export interface SwitchoverWatchDeps {
  topology: Topology;
  timeline: Timeline;
  log: Logger;
  config(): Config;
  dcs: DcsSource;
  clock: Clock;
  /** The drain this watch asks for on `backend` began or ended: recompute its overlay. */
  changed(backend: string): void;
}

interface DcsDrain {
  readonly backend: string;
  /** Patroni's name of the leader being moved, when known. */
  readonly member?: string;
  readonly failover: PatroniFailoverKey;
  readonly reason: string;
}

export class PatroniSwitchoverWatch {
  /** Backend → Patroni member name, from the DCS members' conn_url (Patroni 3.0 does not name itself in GET /patroni). */
  private readonly dcsNames = new Map<string, string>();
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

  constructor(private readonly deps: SwitchoverWatchDeps) {}

  start(): void {
    this.stopWatch = this.deps.dcs.watch(() => this.readDcs());
    this.readDcs();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of [this.dcsTimer, this.scheduledTimer, this.dropTimer]) t?.clear();
    this.stopWatch?.();
    await this.deps.dcs.close().catch(() => undefined);
  }

  /** Why `backend` is drained for a switchover, or undefined. */
  reasonFor(backend: string): string | undefined {
    return this.dcsDrain?.backend === backend ? this.dcsDrain.reason : undefined;
  }

  /** Patroni's member name for `backend`, from the DCS. */
  memberName(backend: string): string | undefined {
    return this.dcsNames.get(backend);
  }

  /** The DCS part of /status (the REST part is per backend). */
  status(): PatroniClusterStatus {
    const dcs = this.deps.config().health.patroni?.dcs;
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

  private readDcs(): void {
    if (this.stopped) return;
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
        this.dcsTimer = this.deps.clock.setTimeout(() => this.readDcs(), this.deps.config().health.patroni?.interval ?? 1_000);
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
      this.dropTimer = this.deps.clock.setTimeout(() => {
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
      this.scheduledTimer = this.deps.clock.setTimeout(() => this.readDcs(), f.scheduledAt! - SCHEDULED_LEAD_MS - this.deps.clock.now());
    }
    if (due && this.dcsDrain === undefined) this.beginDcsDrain(view, f);
    else this.maybeEnd();
  }

  private isDue(f: PatroniFailoverKey): boolean {
    return f.scheduledAt === undefined || f.scheduledAt - SCHEDULED_LEAD_MS <= this.deps.clock.now();
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
    this.deps.changed(backend);
  }

  /** Ends the drain when the key is gone and Patroni either kept the leader or pgwarden has moved its writes on. */
  maybeEnd(): void {
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
    this.deps.changed(d.backend);
  }
}
