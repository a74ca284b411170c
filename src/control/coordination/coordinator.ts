// One member of a cluster of pgwarden instances (DESIGN.md, "Scale beyond one machine"):
// holds this instance's lease, reads the cluster's keys on every change (etcd watch) and on a
// short tick, and runs the member's duties (member.ts) and, while it holds the leader key, the
// leader's (leader.ts). With etcd out of reach it never promotes and keeps the primary it knows.
// A planned switchover asked on any member is written to etcd for the leader to run.
import { randomUUID } from 'node:crypto';
import type { SwitchoverResult } from '../../admin/controller';
import type { CoordinationStatus } from '../../routing/status-snapshot';
import { LEADER, SWITCHOVER, memberKey, quorum, readCluster, voteKey, type ClusterState, type ClusterView, type SwitchoverOutcome } from './cluster-keys';
import type { CoordinationDeps } from './deps';
import { LeaderDuties } from './leader';
import { LeaseKeeper } from './lease-keeper';
import { memberTag } from '../../proxy/cancel-tag';
import type { CancelPeers } from '../../proxy/cancel-forwarder';
import { cancelRecord, peerAddresses, sharingTag } from './cancel-addresses';
import { MemberDuties } from './member';

const TICK_MS = 500;
// How long a switchover waits, after the leader published the new primary, for every live member
// to route writes there before it answers anyway (a member whose checks cannot see it).
const SETTLE_MS = 30_000;

export class Coordinator {
  private readonly lease: LeaseKeeper;
  private readonly member: MemberDuties;
  private readonly leader: LeaderDuties;
  private view: ClusterView | undefined;
  /** The last state read from etcd: what an instance cut from etcd keeps. */
  private lastState: ClusterState | undefined;
  private reachable = false;
  private everHeld = false;
  private memberWritten = false;
  private readError: string | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private closed = false;
  private tickTimer?: { clear(): void };
  private voteTimer?: { clear(): void };
  private stopWatch?: () => void;
  private readonly waiters = new Map<string, (r: SwitchoverOutcome) => void>();
  private readonly reportedUnreadable = new Set<string>();
  private readonly reportedSharedTag = new Set<string>();
  /** The tag in every cancel key this member issues (auth.mode proxy). */
  readonly cancelTag: number;
  private readonly kick = () => this.evaluateSoon();

  constructor(private readonly deps: CoordinationDeps) {
    this.lease = new LeaseKeeper(deps.store, deps.settings.ttl, deps.clock, { held: () => this.onHeld(), lost: (reason) => this.onLost(reason) });
    this.member = new MemberDuties(deps);
    this.leader = new LeaderDuties(deps, this.lease);
    this.cancelTag = memberTag(deps.settings.name);
  }

  /** Where the other live members take CancelRequests for keys they issued (from the last read). */
  cancelPeers(): CancelPeers {
    return {
      ownTag: this.cancelTag,
      addressesFor: (tag, listener) => peerAddresses(this.view, this.deps.settings.name, tag, listener),
    };
  }

  start(): void {
    // Until etcd answers: the local rule, but never a promotion (and no writes with readonly).
    this.member.keepKnown(undefined);
    this.lease.start();
    this.stopWatch = this.deps.store.watch(this.kick);
    this.deps.topology.on('primary', this.kick);
    this.deps.topology.on('state', this.kick);
    this.tick();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.tickTimer?.clear();
    this.voteTimer?.clear();
    this.stopWatch?.();
    this.deps.topology.off('primary', this.kick);
    this.deps.topology.off('state', this.kick);
    await this.running?.catch(() => undefined);
    await this.lease.close().catch(() => undefined);
    await this.deps.store.close();
  }

  /** This instance held a lease and lost it (etcd out of reach); false before the first one. */
  etcdLost(): boolean {
    return this.everHeld && !this.reachable;
  }

  /** Cluster-wide hooks (on_fence, on_primary_change, …) run on the leader only. */
  isLeader(): boolean {
    const lease = this.lease.valid();
    return lease !== undefined && this.view?.leader?.name === this.deps.settings.name && this.view.leader.lease === lease;
  }

  /** A planned switchover for the whole cluster; answers once every live member follows `to`. */
  async switchover(to: string): Promise<SwitchoverResult> {
    const started = this.deps.clock.now();
    if (this.lease.valid() === undefined) return { ok: false, to, error: 'etcd is out of reach: a switchover needs the cluster' };
    const id = randomUUID();
    const request = JSON.stringify({ id, to, by: this.deps.settings.name, at: Date.now() });
    const created = await this.deps.store.transact([{ key: SWITCHOVER, absent: true }], [{ put: SWITCHOVER, value: request }]).catch(() => false);
    if (!created) return { ok: false, to, error: 'a switchover is already under way (or etcd did not answer)' };
    const { drainTimeout } = this.deps.config().failover;
    const outcome = await this.waitForOutcome(id, drainTimeout + Math.max(drainTimeout, 5_000) + 30_000);
    if (!outcome) return { ok: false, to, durationMs: this.deps.clock.now() - started, error: 'the cluster did not finish the switchover in time' };
    if (outcome.ok) await this.waitUntil(() => this.settledOn(to), SETTLE_MS);
    return { ...outcome, durationMs: this.deps.clock.now() - started, closedIdle: outcome.closedIdle ?? 0, closedInTransaction: outcome.closedInTransaction ?? 0 };
  }

  status(): CoordinationStatus {
    const { settings } = this.deps;
    const v = this.view;
    const s = this.lastState;
    const epoch = s?.epoch;
    return {
      name: settings.name,
      quorum: quorum(settings.members),
      ...(v?.leader ? { leader: v.leader.name } : {}),
      isLeader: this.isLeader(),
      ...(s ? { epoch: s.epoch, phase: s.phase, fenced: [...s.fenced] } : { fenced: [] }),
      ...(s?.primary !== undefined ? { primary: s.primary } : {}),
      ...(s?.timeline !== undefined ? { timeline: s.timeline } : {}),
      ...(s?.candidate !== undefined ? { candidate: s.candidate } : {}),
      members: settings.members.map((name) => {
        const rec = this.reachable ? v?.members.get(name) : undefined;
        return {
          name,
          alive: rec !== undefined,
          ...(rec ? { ackEpoch: rec.ackEpoch } : {}),
          lagging: rec !== undefined && epoch !== undefined && rec.ackEpoch < epoch,
          votesDown: this.reachable && v?.votes.get(name)?.epoch === epoch,
          leader: v?.leader?.name === name,
        };
      }),
      etcd: {
        reachable: this.reachable,
        endpoints: [...settings.etcd.endpoints],
        ...(this.reachable ? { leaseRemainingMs: Math.max(0, this.lease.remaining()) } : {}),
        ...(this.lease.lastError ?? this.readError ? { lastError: this.lease.lastError ?? this.readError } : {}),
        onLoss: settings.onEtcdLoss,
      },
      ...(this.leader.lastHandshakeMs !== undefined ? { lastHandshakeMs: this.leader.lastHandshakeMs } : {}),
    };
  }

  // ---- the loop --------------------------------------------------------------------------------

  private tick(): void {
    if (this.closed) return;
    this.tickTimer = this.deps.clock.setTimeout(() => {
      this.evaluateSoon();
      this.tick();
    }, TICK_MS);
  }

  /** One evaluation at a time; a change during one runs another right after. */
  private evaluateSoon(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        try {
          await this.evaluate();
        } catch (e) {
          this.readError = (e as Error).message;
        }
      } while (this.again && !this.closed);
    })().finally(() => (this.running = undefined));
  }

  private async evaluate(): Promise<void> {
    if (this.lease.valid() === undefined) return;
    let view: ClusterView;
    try {
      view = readCluster(await this.deps.store.read());
      this.readError = undefined;
    } catch (e) {
      this.readError = (e as Error).message;
      return;
    }
    // The lease may have run out while the read was in flight: act on nothing then.
    const lease = this.lease.valid();
    if (lease === undefined || this.closed) return;
    this.view = view;
    this.lastState = view.state ?? this.lastState;
    this.reportUnreadable(view);
    await this.member.apply(view.state);
    if (view.state?.primary !== undefined && this.deps.topology.get(view.state.primary)?.role !== 'primary') {
      this.deps.poke(view.state.primary, 'the cluster agreed on it as primary');
    }
    await this.publishMember(view, lease);
    await this.publishVote(view, lease);
    if (!view.leader) {
      const won = await this.deps.store.transact([{ key: LEADER, absent: true }], [{ put: LEADER, value: this.deps.settings.name, lease }]);
      if (won) this.deps.timeline.add('info', 'coordination.leader', `${this.deps.settings.name} is the leader of the cluster`, {});
      if (won) this.again = true;
    } else if (view.leader.name === this.deps.settings.name && view.leader.lease === lease) {
      await this.leader.act(view);
    }
    const result = view.state?.result;
    if (result) this.waiters.get(result.id)?.(result);
  }

  private async publishMember(view: ClusterView, lease: string): Promise<void> {
    const { name } = this.deps.settings;
    const rec = view.members.get(name);
    const drained = this.member.drained;
    // Read each time: a reload may add or remove listeners.
    const cancel = cancelRecord(this.cancelTag, this.deps.config().listeners, this.deps.settings.advertise);
    this.reportSharedTag(view);
    const sameCancel = JSON.stringify(rec?.cancel) === JSON.stringify(cancel);
    if (this.memberWritten && rec?.ackEpoch === this.member.ackEpoch && rec.drained?.epoch === drained?.epoch && sameCancel) return;
    const value = JSON.stringify({ name, ackEpoch: this.member.ackEpoch, ...(drained ? { drained } : {}), cancel, at: Date.now() });
    await this.deps.store.transact([], [{ put: memberKey(name), value, lease }]);
    this.memberWritten = true;
  }

  private reportSharedTag(view: ClusterView): void {
    for (const other of sharingTag(view, this.deps.settings.name, this.cancelTag)) {
      if (this.reportedSharedTag.has(other)) continue;
      this.reportedSharedTag.add(other);
      this.deps.timeline.add('warn', 'coordination.cancel_tag_shared', `${this.deps.settings.name} and ${other} have the same cancel key tag (${this.cancelTag}): a CancelRequest for a key of one that reaches the other is not forwarded (rename one member to fix)`, {});
    }
  }

  private async publishVote(view: ClusterView, lease: string): Promise<void> {
    const { name } = this.deps.settings;
    const { vote, recheckInMs } = this.member.vote(view.state);
    this.voteTimer?.clear();
    if (recheckInMs !== undefined) this.voteTimer = this.deps.clock.setTimeout(this.kick, recheckInMs);
    const held = view.votes.get(name);
    if (vote === undefined) {
      if (held) await this.deps.store.transact([], [{ delete: voteKey(name) }]);
      return;
    }
    if (held?.epoch === vote.epoch && held.primary === vote.primary) return;
    await this.deps.store.transact([], [{ put: voteKey(name), value: JSON.stringify({ ...vote, at: Date.now() }), lease }]);
    this.deps.timeline.add('warn', 'coordination.vote', `${vote.primary} has been down here for promote_after: ${name} votes for a failover (epoch ${vote.epoch})`, { backend: vote.primary });
  }

  // ---- etcd reachability -----------------------------------------------------------------------

  private onHeld(): void {
    this.memberWritten = false;
    this.reachable = true;
    if (this.everHeld) this.deps.timeline.add('info', 'coordination.etcd_back', `etcd is reachable again: ${this.deps.settings.name} rejoins the cluster`, {});
    this.everHeld = true;
    this.deps.bus.emit('coordination.etcd', { reachable: true });
    this.evaluateSoon();
  }

  private onLost(reason: string): void {
    this.reachable = false;
    this.member.keepKnown(this.lastState);
    const keep = this.deps.settings.onEtcdLoss === 'keep';
    const what = keep ? `keeps routing writes to ${this.lastState?.primary ?? 'the primary its checks see'} and never promotes` : 'routes no writes (on_etcd_loss: readonly) and never promotes';
    this.deps.timeline.add('error', 'coordination.etcd_lost', `etcd out of reach (${reason}): ${this.deps.settings.name} ${what} until etcd is back`, {});
    this.deps.bus.emit('coordination.etcd', { reachable: false });
  }

  // ---- waiting -------------------------------------------------------------------------------

  private waitForOutcome(id: string, timeoutMs: number): Promise<SwitchoverOutcome | undefined> {
    return new Promise((resolve) => {
      const timer = this.deps.clock.setTimeout(() => {
        this.waiters.delete(id);
        resolve(undefined);
      }, timeoutMs);
      this.waiters.set(id, (r) => {
        timer.clear();
        this.waiters.delete(id);
        resolve(r);
      });
      this.evaluateSoon();
    });
  }

  /** Every live member acknowledged the newest epoch and this instance routes writes to `to`. */
  private settledOn(to: string): boolean {
    const v = this.view;
    const epoch = v?.state?.epoch;
    if (!v || epoch === undefined || v.state?.primary !== to) return false;
    return [...v.members.values()].every((m) => m.ackEpoch >= epoch) && this.deps.topology.primary()?.name === to;
  }

  private async waitUntil(cond: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = this.deps.clock.now() + timeoutMs;
    while (!cond() && this.deps.clock.now() < deadline && !this.closed) {
      await new Promise<void>((r) => this.deps.clock.setTimeout(r, 50));
      this.evaluateSoon();
    }
  }

  private reportUnreadable(view: ClusterView): void {
    for (const key of view.unreadable) {
      if (this.reportedUnreadable.has(key)) continue;
      this.reportedUnreadable.add(key);
      this.deps.log.warn({ event: 'coordination.unreadable', key }, `etcd key ${this.deps.settings.etcd.prefix}/${key} does not hold what pgwarden writes; ignored`);
    }
  }
}
