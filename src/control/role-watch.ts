// When to watch the replicas closely: during the failover gap, that is while there is no primary
// (none yet, lost, fenced, split brain) or while the primary is failing its checks (up, but
// counting towards `fall`: it may be dead already and a replica promoted). Then every healthy
// replica's checker polls its role every `failover.watch_interval` (health/checker.ts), so the
// server an orchestrator promotes is followed within one poll instead of at its next routine
// check. Outside the gap nothing changes: the checks run at their usual intervals.
import type { Config } from '../config/types';
import type { Topology } from '../routing/topology';

export interface RoleWatchDeps {
  readonly topology: Topology;
  readonly config: () => Config;
  /** Role polls on every checker at this interval, or off (undefined). */
  setWatch(intervalMs: number | undefined): void;
  /** The gap began (interval) or ended (undefined); for the log. */
  onChange?(intervalMs: number | undefined): void;
  /**
   * Watch outside the gap too while this is true: an instance cut from etcd keeps its primary,
   * and must see at once a promotion the others made (coordination, on_etcd_loss keep).
   */
  alsoWhile?(): boolean;
}

/** True while writes have no healthy primary to go to, or soon may not. */
export function inFailoverGap(topology: Topology): boolean {
  const p = topology.primary();
  return p === undefined || p.state !== 'up' || p.transitional;
}

export class RoleWatch {
  private current: number | undefined;
  private closed = false;
  private readonly onTopology = (): void => this.evaluate();

  constructor(private readonly deps: RoleWatchDeps) {
    deps.topology.on('change', this.onTopology);
    this.evaluate();
  }

  /** The poll interval now (undefined outside the gap): for checkers created later (reload). */
  interval(): number | undefined {
    return this.current;
  }

  /** Look again (the condition of alsoWhile changed). */
  refresh(): void {
    this.evaluate();
  }

  /** Polls off for good (shutdown: stopping is not a failover). */
  close(): void {
    this.closed = true;
    this.deps.topology.off('change', this.onTopology);
    this.apply(undefined);
  }

  private evaluate(): void {
    if (this.closed) return;
    const ms = this.deps.config().failover.watchInterval;
    this.apply(ms > 0 && (inFailoverGap(this.deps.topology) || this.deps.alsoWhile?.() === true) ? ms : undefined);
  }

  private apply(ms: number | undefined): void {
    if (ms === this.current) return;
    this.current = ms;
    this.deps.setWatch(ms);
    this.deps.onChange?.(ms);
  }
}
