// The single source of truth for the cluster view: each backend's health state, role, lag and
// live session count, and which backend is the primary. Pure logic fed by the health checkers
// (no sockets, no timers), so it is unit-testable and every routing decision reads one place.
import { EventEmitter } from 'node:events';
import type { BackendConfig, HealthConfig } from '../config/types';
import { FAILURE_DESCRIPTIONS, verdictOf, type DetectedRole, type ProbeFailure, type ProbeResult } from '../health/types';
import type { PatroniMember } from '../health/patroni-rest';
import type { AdminState } from './status-snapshot';
import { decideUnderAuthority, type PrimaryAuthority } from './primary-authority';

export type { PrimaryAuthority } from './primary-authority';

export type BackendState = 'init' | 'up' | 'down';

export interface BackendView {
  /** Replaced in place by a reload that changes this backend. */
  config: BackendConfig;
  readonly name: string;
  state: BackendState;
  /** Operator state (admin API): drain = no new sessions, maint = no traffic at all. */
  adminState: AdminState;
  /** Kept from writes by the split-brain rule (a second server claiming primary). */
  fenced: boolean;
  /** Agent report: weight percentage and state override (HAProxy agent-check). */
  agentWeightPercent?: number;
  agentState?: 'up' | 'drain' | 'down' | 'maint';
  /** `health.patroni`: what Patroni's REST API said last, and when (wall clock). */
  patroni?: PatroniMember & { readonly at: number };
  /**
   * Why Patroni is taking this server away (demoting, restarting, a switchover announced in its
   * DCS): no new sessions until it clears. An overlay of its own, never the operator's adminState.
   */
  patroniDrain?: string;
  /** Weight after the agent's percentage. */
  effectiveWeight: number;
  /** Monotonic ms of the first failed check in the current failure streak (detection latency). */
  firstFailureAt?: number;
  /** Rise/fall counters are moving: the state may flip soon. */
  transitional: boolean;
  role?: DetectedRole;
  /** Write position on a primary; replay position on a replica (from the last good check). */
  currentLsn?: bigint;
  /** Timeline of a primary. */
  timeline?: number;
  receiveLsn?: bigint;
  replayLsn?: bigint;
  lagBytes?: number;
  lagSeconds?: number;
  lastFailure?: ProbeFailure;
  lastCheckAt?: number;
  /** The last probe result, with the wall-clock time it settled. */
  lastCheck?: { ok: boolean; at: number; durationMs: number; layer?: ProbeFailure['layer']; message?: string };
  activeSessions: number;
}

export interface CheckerSnapshot {
  state: BackendState;
  transitional: boolean;
  role?: DetectedRole;
  lastResult?: ProbeResult;
  lastFailure?: ProbeFailure;
  lastCheckAt?: number;
}

export interface StateChange {
  backend: string;
  from: BackendState;
  to: BackendState;
  role?: DetectedRole;
  reason?: string;
}

/**
 * Events: 'change' (after any update that can alter routing), 'state' (StateChange),
 * 'primary' ({from?: string, to?: string}).
 */
export class Topology extends EventEmitter {
  private readonly views = new Map<string, BackendView>();
  private primaryName: string | undefined;
  private splitBrain: string[] = [];
  private authority: PrimaryAuthority | undefined;

  constructor(backends: readonly BackendConfig[], private readonly health: Pick<HealthConfig, 'maxReplicaLag'>) {
    super();
    for (const config of backends) this.add(config);
  }

  /** A new backend (startup or reload): state init until its first check. */
  add(config: BackendConfig): void {
    this.views.set(config.name, {
      config,
      name: config.name,
      state: 'init',
      adminState: 'ready',
      fenced: false,
      effectiveWeight: config.weight,
      transitional: false,
      activeSessions: 0,
    });
    this.emit('change');
  }

  /** Forget a backend (reload removed it). Its sessions are the caller's business. */
  remove(name: string): void {
    if (!this.views.delete(name)) return;
    const before = this.primaryName;
    this.recomputePrimary();
    if (before !== this.primaryName) this.emit('primary', { from: before, to: this.primaryName });
    this.emit('change');
  }

  /** New settings for a kept backend; a new address starts over from init. */
  replaceConfig(config: BackendConfig): void {
    const v = this.views.get(config.name);
    if (!v) return this.add(config);
    const moved = v.config.host !== config.host || v.config.port !== config.port;
    v.config = config;
    v.effectiveWeight = Math.round((config.weight * (v.agentWeightPercent ?? 100)) / 100);
    if (moved) {
      v.state = 'init';
      v.role = undefined;
      v.lastCheck = undefined;
      v.lastFailure = undefined;
      const before = this.primaryName;
      this.recomputePrimary();
      if (before !== this.primaryName) this.emit('primary', { from: before, to: this.primaryName });
    }
    this.emit('change');
  }

  backends(): BackendView[] {
    return [...this.views.values()];
  }

  get(name: string): BackendView | undefined {
    return this.views.get(name);
  }

  primary(): BackendView | undefined {
    return this.primaryName === undefined ? undefined : this.views.get(this.primaryName);
  }

  /** Set (or clear) who decides the primary; emits 'primary' when that changes it, and 'change'. */
  setAuthority(authority: PrimaryAuthority | undefined): void {
    this.authority = authority;
    const before = this.primaryName;
    this.recomputePrimary();
    if (before !== this.primaryName) this.emit('primary', { from: before, to: this.primaryName });
    this.emit('change');
  }

  /** Servers whose own checks say they are primary (up), fenced or not: what a cluster leader judges by. */
  claimants(): BackendView[] {
    return this.backends().filter((v) => v.state === 'up' && v.role === 'primary');
  }

  /** Names of backends that all claim to be primary, when more than one does. */
  splitBrainMembers(): readonly string[] {
    return this.splitBrain;
  }

  /** Feed one checker snapshot; emits 'state' on a state flip and 'change' always. */
  update(name: string, snap: CheckerSnapshot): void {
    const view = this.views.get(name);
    if (!view) return;
    const from = view.state;
    const r0 = snap.lastResult;
    if (r0 && verdictOf(r0) === 'failure') view.firstFailureAt ??= snap.lastCheckAt ?? Date.now();
    else if (r0 && r0.ok) view.firstFailureAt = undefined;
    view.state = snap.state;
    view.transitional = snap.transitional;
    view.lastFailure = snap.lastFailure;
    view.lastCheckAt = snap.lastCheckAt;
    const r = snap.lastResult;
    if (r) {
      view.lastCheck = r.ok
        ? { ok: true, at: Date.now(), durationMs: r.durationMs }
        : { ok: false, at: Date.now(), durationMs: r.durationMs, layer: r.layer, message: r.message };
    }
    if (r && r.ok) {
      view.role = r.role;
      view.timeline = r.timeline;
      // A fenced server that is back in recovery (rewound, rejoined) is an ordinary replica.
      if (view.fenced && r.role === 'replica') {
        view.fenced = false;
        this.emit('unfenced', { backend: name, reason: 'back in recovery' });
      }
      view.currentLsn = r.currentLsn;
      view.receiveLsn = r.receiveLsn;
      view.replayLsn = r.replayLsn;
      view.lagSeconds = r.role === 'replica' ? (r.replayLagSeconds ?? 0) : undefined;
    } else if (snap.role) {
      view.role = snap.role;
    }
    const primaryBefore = this.primaryName;
    this.recomputePrimary();
    this.recomputeLag();
    // Order of events: the backend's own flip, then what it means for the primary, then the
    // routing-relevant 'change' that wakes queued sessions.
    if (from !== view.state) {
      const reason = view.state === 'down' && view.lastFailure ? describeFailure(view.lastFailure) : undefined;
      this.emit('state', { backend: name, from, to: view.state, role: view.role, reason } satisfies StateChange);
    }
    if (primaryBefore !== this.primaryName) this.emit('primary', { from: primaryBefore, to: this.primaryName });
    this.emit('change');
  }

  /** Operator state from the admin API. Emits 'change' (routing may differ). */
  setAdminState(name: string, state: AdminState): boolean {
    const v = this.views.get(name);
    if (!v) return false;
    if (v.adminState !== state) {
      v.adminState = state;
      this.emit('change');
    }
    return true;
  }

  /** Apply an agent report (undefined fields leave the previous value: HAProxy semantics). */
  setAgent(name: string, report: { weightPercent?: number; state?: BackendView['agentState'] | 'ready' }): void {
    const v = this.views.get(name);
    if (!v) return;
    if (report.weightPercent !== undefined) v.agentWeightPercent = Math.max(0, Math.min(100, report.weightPercent));
    if (report.state === 'ready' || report.state === 'up') v.agentState = undefined;
    else if (report.state !== undefined) v.agentState = report.state;
    v.effectiveWeight = Math.round((v.config.weight * (v.agentWeightPercent ?? 100)) / 100);
    this.emit('change');
  }

  /** The last GET /patroni of this backend (status only: routing reads patroniDrain). */
  setPatroni(name: string, member: (PatroniMember & { readonly at: number }) | undefined): void {
    const v = this.views.get(name);
    if (v) v.patroni = member;
  }

  /** Set (a reason) or clear (undefined) the Patroni drain overlay; emits 'change' when it changes. */
  setPatroniDrain(name: string, reason: string | undefined): boolean {
    const v = this.views.get(name);
    if (!v || v.patroniDrain === reason) return false;
    const wasDraining = v.patroniDrain !== undefined;
    v.patroniDrain = reason;
    if (wasDraining !== (reason !== undefined)) this.emit('change');
    return true;
  }

  /** Can this backend take a new session at all (role and lag aside)? */
  routable(v: BackendView): boolean {
    return v.state === 'up' && v.adminState === 'ready' && !v.fenced && v.agentState === undefined && v.patroniDrain === undefined && v.effectiveWeight > 0;
  }

  sessionOpened(name: string): void {
    const v = this.views.get(name);
    if (v) v.activeSessions++;
  }

  sessionClosed(name: string): void {
    const v = this.views.get(name);
    if (v && v.activeSessions > 0) v.activeSessions--;
  }

  /** True when a replica is within `max_replica_lag` (no limit configured: always). */
  withinLag(v: BackendView): boolean {
    const limit = this.health.maxReplicaLag;
    if (limit.bytes !== undefined && (v.lagBytes === undefined || v.lagBytes > limit.bytes)) return false;
    if (limit.ms !== undefined && (v.lagSeconds === undefined || v.lagSeconds * 1000 > limit.ms)) return false;
    return true;
  }

  private recomputePrimary(): void {
    if (this.authority) return this.follow(this.authority);
    this.recomputeLocally();
  }

  /** The rule of one instance on its own: one claimant is the primary; two or more: newest timeline. */
  private recomputeLocally(): void {
    let claimants = this.backends().filter((v) => v.state === 'up' && v.role === 'primary' && !v.fenced);
    if (claimants.length > 1) {
      // Split brain: two servers accept writes. Keep the one on the newest timeline (it was
      // promoted last), then the one furthest ahead; fence every other one so no write reaches
      // it until it is back in recovery or an operator clears it.
      const keeper = [...claimants].sort(newestFirst)[0];
      const unknown = claimants.some((v) => v.timeline === undefined);
      if (unknown) {
        // Without timelines (tcp checks) there is no safe choice: hold writes.
        this.primaryName = undefined;
        this.splitBrain = claimants.map((v) => v.name);
        return;
      }
      for (const v of claimants) {
        if (v === keeper) continue;
        v.fenced = true;
        this.emit('fenced', { backend: v.name, keep: keeper.name, timeline: v.timeline, keeperTimeline: keeper.timeline });
      }
      claimants = [keeper];
    }
    this.splitBrain = [];
    this.primaryName = claimants.length === 1 ? claimants[0].name : undefined;
  }

  /** Apply the authority's decision: fence and unfence claimants, name the primary. */
  private follow(authority: PrimaryAuthority): void {
    const d = decideUnderAuthority(authority, this.claimants());
    if (d === 'local') return this.recomputeLocally();
    this.splitBrain = [];
    for (const { view, reason } of d.unfence) {
      view.fenced = false;
      this.emit('unfenced', { backend: view.name, reason });
    }
    for (const view of d.fence) {
      view.fenced = true;
      this.emit('fenced', { backend: view.name, keep: d.primary?.name, timeline: view.timeline, keeperTimeline: d.primary?.timeline, byCluster: authority.kind === 'cluster' });
    }
    this.primaryName = d.primary?.name;
  }

  /** Operator clears a fence (admin `ready`). */
  unfence(name: string): boolean {
    const v = this.views.get(name);
    if (!v || !v.fenced) return false;
    v.fenced = false;
    this.emit('unfenced', { backend: name, reason: 'cleared by an operator' });
    this.recomputePrimary();
    this.emit('change');
    return true;
  }

  private recomputeLag(): void {
    const primaryLsn = this.primary()?.currentLsn;
    for (const v of this.views.values()) {
      if (v.role !== 'replica' || v.replayLsn === undefined) {
        v.lagBytes = undefined;
        continue;
      }
      // Against the primary's write position when we know it (up to one check interval old);
      // otherwise what the replica received but has not replayed yet.
      const ref = primaryLsn ?? v.receiveLsn ?? v.replayLsn;
      const diff = ref - v.replayLsn;
      v.lagBytes = diff > 0n ? Number(diff) : 0;
    }
  }
}

function newestFirst(a: BackendView, b: BackendView): number {
  const ta = a.timeline ?? -1;
  const tb = b.timeline ?? -1;
  if (ta !== tb) return tb - ta;
  const la = a.currentLsn ?? -1n;
  const lb = b.currentLsn ?? -1n;
  return la === lb ? 0 : lb > la ? 1 : -1;
}

export function describeFailure(f: ProbeFailure): string {
  return `${FAILURE_DESCRIPTIONS[f.layer]}: ${f.message}`;
}
