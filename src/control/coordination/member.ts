// What every member does with the cluster's state, leader or not: apply it to routing, drain a
// replaced primary, acknowledge the epoch, and vote when its own checks find the agreed primary
// down. Pure reactions to one read of etcd (ClusterView) plus this instance's Topology; the
// writes are returned to the coordinator, which makes them on this member's lease.
import { SqlState } from '../../errors';
import type { PrimaryAuthority } from '../../routing/topology';
import { closeSessions, drainAtBoundaries } from '../drain';
import type { ClusterState } from './cluster-keys';
import type { CoordinationDeps } from './deps';

export interface DrainCount {
  readonly epoch: number;
  readonly idle: number;
  readonly inTransaction: number;
}

export class MemberDuties {
  /** The newest epoch applied here: sessions on a replaced primary are closed. */
  ackEpoch = 0;
  drained: DrainCount | undefined;
  private hold: { backend: string; previous: 'ready' | 'drain' | 'maint'; epoch: number } | undefined;
  private authorityKey = '';
  /** Since when this instance's checks have not seen the agreed primary as primary (ms). */
  private downSince: number | undefined;

  constructor(private readonly deps: CoordinationDeps) {}

  /** Route by the cluster's state; drain and acknowledge a new epoch. Resolves once acknowledged here. */
  async apply(state: ClusterState | undefined): Promise<void> {
    if (state === undefined) return this.setAuthority(undefined);
    if (state.phase === 'stable') {
      this.releaseHold();
      this.setAuthority({ kind: 'cluster', primary: state.primary });
      // Acknowledged once this instance routes writes there (its checks agree), so that "every
      // member acknowledged" means the whole cluster has switched.
      const routed = state.primary === undefined || this.deps.topology.primary()?.name === state.primary;
      if (routed) this.ackEpoch = Math.max(this.ackEpoch, state.epoch);
      return;
    }
    if (state.epoch <= this.ackEpoch) return;
    const old = state.old;
    if (state.phase === 'switchover' && old !== undefined) await this.drainForSwitchover(state, old);
    // No server takes writes until the leader publishes the new primary; the old one, still
    // claiming primary here, is fenced (its sessions closed by the fence reaction).
    this.setAuthority({ kind: 'cluster', primary: undefined });
    if (old !== undefined) {
      closeSessions(this.deps.sessionsOn(old), state.phase === 'switchover' ? 'switchover' : 'fenced', SqlState.ADMIN_SHUTDOWN, `terminating connection: the cluster is replacing primary ${old}; reconnect to continue`);
    }
    this.ackEpoch = state.epoch;
  }

  /** etcd out of reach: keep the last agreed primary (or, readonly, none). */
  keepKnown(state: ClusterState | undefined): void {
    this.releaseHold();
    const timeline = state?.timeline ?? (state?.primary ? this.deps.topology.get(state.primary)?.timeline : undefined);
    this.setAuthority({ kind: 'sticky', primary: state?.primary, timeline, writes: this.deps.settings.onEtcdLoss === 'keep' });
  }

  /**
   * The vote this member should hold: the agreed primary of a stable epoch has not been a primary
   * in this instance's view for failover.promote_after (after its own `fall`). Also returns when
   * to look again if the vote is not due yet.
   */
  vote(state: ClusterState | undefined): { vote?: { epoch: number; primary: string }; recheckInMs?: number } {
    const now = this.deps.clock.now();
    const failover = this.deps.config().failover;
    if (failover.mode !== 'promote' || state?.phase !== 'stable' || state.primary === undefined || this.deps.topology.primary()?.name === state.primary) {
      this.downSince = undefined;
      return {};
    }
    this.downSince ??= now;
    const due = this.downSince + failover.promoteAfter;
    return now >= due ? { vote: { epoch: state.epoch, primary: state.primary } } : { recheckInMs: due - now };
  }

  private async drainForSwitchover(state: ClusterState, old: string): Promise<void> {
    const { topology, timeline } = this.deps;
    const view = topology.get(old);
    if (view && this.hold?.epoch !== state.epoch) {
      this.hold = { backend: old, previous: this.hold?.backend === old ? this.hold.previous : view.adminState, epoch: state.epoch };
      topology.setAdminState(old, 'drain');
    }
    const to = state.candidate ?? '?';
    timeline.add('info', 'switchover.progress', `switchover ${old} → ${to} (epoch ${state.epoch}): new sessions wait, draining ${this.deps.sessionsOn(old).length} sessions on ${old}`, { backend: to });
    const r = await drainAtBoundaries({
      sessions: () => this.deps.sessionsOn(old),
      timeoutMs: this.deps.config().failover.drainTimeout,
      pollMs: 50,
      reason: 'switchover',
      idleMessage: `terminating connection: planned switchover from ${old} to ${to} under way; reconnect to continue`,
      timeoutMessage: `terminating connection: planned switchover from ${old} to ${to}: drain_timeout reached`,
      clock: this.deps.clock,
    });
    this.drained = { epoch: state.epoch, idle: r.closedIdle, inTransaction: r.closedInTransaction };
  }

  private releaseHold(): void {
    if (!this.hold) return;
    const { backend, previous } = this.hold;
    this.hold = undefined;
    this.deps.topology.setAdminState(backend, previous);
  }

  private setAuthority(a: PrimaryAuthority | undefined): void {
    const key = JSON.stringify(a ?? null);
    if (key === this.authorityKey) return;
    this.authorityKey = key;
    this.deps.topology.setAuthority(a);
  }
}
