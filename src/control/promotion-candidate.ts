// Which replica a failover promotes: the healthy one that has replayed the most WAL, never one
// further behind the lost primary's last known position than max_lag_on_failover. One rule for
// an instance on its own (primary-loss.ts) and for a cluster's leader (coordination/leader.ts).
// A member Patroni tags `nofailover` is never one: Patroni would not promote it either.
import type { BackendView, Topology } from '../routing/topology';

export function bestReplica(topology: Topology, lost: string | undefined, maxLagBytes: number, lastLsn = lost === undefined ? undefined : topology.get(lost)?.currentLsn): BackendView | undefined {
  const maxLag = BigInt(maxLagBytes);
  return topology
    .backends()
    .filter((v) => v.state === 'up' && v.role === 'replica' && v.adminState !== 'maint' && !v.fenced && v.patroni?.noFailover !== true && v.replayLsn !== undefined)
    .filter((v) => lastLsn === undefined || lastLsn - v.replayLsn! <= maxLag)
    .sort((a, b) => (a.replayLsn! === b.replayLsn! ? 0 : a.replayLsn! > b.replayLsn! ? -1 : 1))[0];
}
