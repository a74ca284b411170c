// What pgwarden does while there is no primary, besides holding new write sessions:
// - every server is checked at fast_interval, not interval, so the replica an orchestrator
//   promotes is seen within one fast_interval and the queued sessions go to it that much sooner;
// - failover.mode promote: when the primary stays lost for promote_after, promote the healthy
//   replica that has replayed the most WAL — never one further behind the lost primary's last
//   known position than max_lag_on_failover. A primary coming back cancels it. With coordination
//   through etcd this instance only votes; the cluster's leader promotes (control/coordination).
import { realClock, type Clock } from '../clock';
import type { Config } from '../config/types';
import type { Endpoint } from '../hooks/env';
import type { HookRunner } from '../hooks/runner';
import type { Topology } from '../routing/topology';
import type { Timeline } from './timeline';
import { promoteServer } from './admin-sql';
import { bestReplica } from './promotion-candidate';

export interface PrimaryLossDeps {
  topology: Topology;
  timeline: Timeline;
  config: () => Config;
  hooks: () => HookRunner;
  /** Look at every backend again (soon), or at one. */
  pokeAll(reason: string): void;
  poke(backend: string, reason: string): void;
  endpoint(name: string | undefined): Endpoint | undefined;
  /** A planned switchover is running: it promotes by itself. */
  switching(): boolean;
  /** Several instances coordinate through etcd: the cluster's leader promotes, not this. */
  coordinated(): boolean;
  /** Time for promote_after and the urgent checks (a FakeClock in tests); default the real clock. */
  clock?: Clock;
}

export class PrimaryLoss {
  private urgentTimer?: { clear(): void };
  private promoteTimer?: { clear(): void };
  private closed = false;
  private readonly clock: Clock;

  constructor(private readonly deps: PrimaryLossDeps) {
    this.clock = deps.clock ?? realClock;
  }

  /** Feed every primary change (from the Topology's 'primary' event). */
  onPrimary(p: { from?: string; to?: string }): void {
    this.urgentChecks(p.to === undefined);
    this.schedulePromotion(p);
  }

  close(): void {
    this.closed = true;
    this.urgentChecks(false);
    this.promoteTimer?.clear();
    this.promoteTimer = undefined;
  }

  private urgentChecks(on: boolean): void {
    if (!on || this.closed) {
      this.urgentTimer?.clear();
      this.urgentTimer = undefined;
      return;
    }
    if (this.urgentTimer) return;
    // Re-armed after each poke (the clock has one-shot timers only); fast_interval is read each
    // time, so a reload applies at the next one.
    const arm = () => {
      this.urgentTimer = this.clock.setTimeout(() => {
        this.deps.pokeAll('no primary: checking every fast_interval');
        if (this.urgentTimer) arm();
      }, this.deps.config().health.fastInterval);
    };
    arm();
  }

  private schedulePromotion(p: { from?: string; to?: string }): void {
    if (p.to !== undefined || this.deps.switching()) {
      this.promoteTimer?.clear();
      this.promoteTimer = undefined;
      return;
    }
    const { failover } = this.deps.config();
    if (failover.mode !== 'promote' || this.deps.coordinated() || this.promoteTimer || this.closed) return;
    const lastLsn = p.from ? this.deps.topology.get(p.from)?.currentLsn : undefined;
    this.deps.timeline.add('warn', 'failover.pending', `no primary; promoting a replica in ${failover.promoteAfter} ms unless one comes back`, { backend: p.from });
    this.promoteTimer = this.clock.setTimeout(() => {
      this.promoteTimer = undefined;
      void this.promoteBest(p.from, lastLsn);
    }, failover.promoteAfter);
  }

  private async promoteBest(lostName: string | undefined, lastLsn: bigint | undefined): Promise<void> {
    const { topology, timeline } = this.deps;
    if (topology.primary() || this.closed) return;
    const config = this.deps.config();
    const best = bestReplica(topology, lostName, config.failover.maxLagOnFailover, lastLsn);
    if (!best) {
      timeline.add('error', 'failover.no_candidate', `no replica can be promoted (none healthy within max_lag_on_failover ${config.failover.maxLagOnFailover} bytes of ${lostName ?? 'the lost primary'})`, {});
      return;
    }
    timeline.add('warn', 'failover.promote', `promoting ${best.name} (replayed ${best.replayLsn}) after ${lostName ?? 'the primary'} stayed down`, { backend: best.name });
    try {
      await promoteServer({ name: best.name, host: best.config.host, port: best.config.port }, config);
      this.deps.poke(best.name, 'promoted');
      timeline.add('info', 'failover.promoted', `${best.name} promoted`, { backend: best.name });
      void this.deps.hooks().run('on_promote', { oldPrimary: this.deps.endpoint(lostName), newPrimary: this.deps.endpoint(best.name) });
    } catch (e) {
      timeline.add('error', 'failover.promote_failed', (e as Error).message, { backend: best.name });
    }
  }
}
