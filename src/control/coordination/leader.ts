// What the cluster's leader (the holder of the `leader` key, on its own lease) does with one
// read of etcd: start a failover once a quorum of members votes the primary down, start a
// switchover that any member asked for, finish either once every live member acknowledged the
// epoch (promote the candidate, publish it), follow a primary promoted from outside, and keep
// the agreed primary's timeline and the fenced list current.
//
// Every write of `state` is a transaction conditioned on the revision read and on the leader
// key still being on this lease, and it is made only while our own lease deadline has not
// passed: a leader that was paused past its lease (SIGSTOP) and wakes with an old read cannot
// publish. A leader killed half-way leaves `state` saying what it was doing (phase, candidate),
// and the next leader finishes it with the same candidate.
import { promoteServer, currentWalLsn, replayLsn } from '../admin-sql';
import { bestReplica } from '../promotion-candidate';
import { LEADER, STATE, SWITCHOVER, quorum, type ClusterState, type ClusterView, type SwitchoverOutcome } from './cluster-keys';
import type { CoordinationDeps } from './deps';
import type { LeaseKeeper } from './lease-keeper';
import type { Write } from '../../coordination/store';

const CATCH_UP_POLL_MS = 50;

export class LeaderDuties {
  /** When this leader published the epoch whose handshake runs (for the handshake's duration). */
  private handshakeStarted = new Map<number, number>();
  private reported = new Set<string>();
  /** Handshake durations (ms) of finished epochs, for metrics and status. */
  lastHandshakeMs: number | undefined;

  constructor(
    private readonly deps: CoordinationDeps,
    private readonly lease: LeaseKeeper,
    
  ) {}

  async act(view: ClusterView): Promise<void> {
    const s = view.state;
    if (s === undefined) return void (await this.bootstrap(view));
    if (s.phase !== 'stable') return this.finishHandshake(view, s);
    if (view.switchover && (await this.startSwitchover(view, s))) return;
    // A server promoted from outside (or while etcd was out of reach) comes before any vote:
    // promoting another one would make two primaries.
    if (await this.followNewerPrimary(view, s)) return;
    if (await this.startFailover(view, s)) return;
    await this.keepCurrent(view, s);
  }

  // ---- stable ------------------------------------------------------------------------------

  /** No state yet: publish the primary this leader's checks see, once there is exactly one. */
  private async bootstrap(view: ClusterView): Promise<boolean> {
    const claimants = this.deps.topology.claimants();
    if (claimants.length !== 1) return false;
    const p = claimants[0]!;
    return this.publish(view, { epoch: 1, phase: 'stable', primary: p.name, timeline: p.timeline, fenced: [] }, `cluster state created: primary ${p.name}`);
  }

  /** A quorum of members finds the agreed primary down: stop writes everywhere, then promote. */
  private async startFailover(view: ClusterView, s: ClusterState): Promise<boolean> {
    const { settings, topology, timeline } = this.deps;
    if (this.deps.config().failover.mode !== 'promote' || s.primary === undefined) return false;
    const voters = settings.members.filter((m) => {
      const v = view.votes.get(m);
      return v !== undefined && v.epoch === s.epoch && v.primary === s.primary;
    });
    if (voters.length < quorum(settings.members)) return false;
    const candidate = bestReplica(topology, s.primary, this.deps.config().failover.maxLagOnFailover);
    if (!candidate) {
      this.once(`no-candidate-${s.epoch}`, () =>
        timeline.add('error', 'failover.no_candidate', `a quorum (${voters.join(', ')}) finds ${s.primary} down, but no replica can be promoted (none healthy within max_lag_on_failover)`, {}),
      );
      return true;
    }
    timeline.add('warn', 'failover.quorum', `${voters.join(', ')} find ${s.primary} down (quorum ${quorum(settings.members)} of ${settings.members.length}): epoch ${s.epoch + 1} stops writes to it on every member, then ${candidate.name} is promoted`, { backend: candidate.name });
    return this.publish(view, { ...base(s), epoch: s.epoch + 1, phase: 'failover', primary: undefined, old: s.primary, candidate: candidate.name }, undefined, true);
  }

  /** A member asked for a planned switchover: check it, ask the pre_switchover hooks, start it. */
  private async startSwitchover(view: ClusterView, s: ClusterState): Promise<boolean> {
    const req = view.switchover!;
    if (s.result?.id === req.id) {
      await this.write(view, [{ delete: SWITCHOVER }]);
      return true;
    }
    const { topology } = this.deps;
    const target = topology.get(req.to);
    const old = s.primary === undefined ? undefined : topology.get(s.primary);
    const refuse = (error: string) => this.publish(view, { ...base(s), result: { id: req.id, ok: false, to: req.to, from: s.primary, error } }, undefined, false, [{ delete: SWITCHOVER }]);
    if (!target) return refuse(`no backend named ${req.to}`);
    if (!old) return refuse('there is no primary to switch over from');
    if (old.name === req.to) return refuse(`${req.to} is already the primary`);
    if (target.state !== 'up' || target.role !== 'replica') return refuse(`${req.to} is not a healthy replica (state ${target.state}, role ${target.role ?? 'unknown'})`);
    if (target.adminState !== 'ready' || target.fenced) return refuse(`${req.to} is ${target.fenced ? 'fenced' : target.adminState}`);
    const veto = await this.deps.hooks().preSwitchover({ oldPrimary: addr(old), newPrimary: addr(target) });
    if (!veto.allowed) return refuse(`vetoed by a pre_switchover hook: ${veto.reason ?? 'non-zero exit'}`);
    return this.publish(
      view,
      { ...base(s), epoch: s.epoch + 1, phase: 'switchover', primary: undefined, old: old.name, candidate: req.to, switchover: { id: req.id, to: req.to, by: req.by, startedAt: Date.now() } },
      `switchover ${old.name} → ${req.to} (asked on ${req.by}): every member drains ${old.name} at transaction boundaries`,
      true,
    );
  }

  /** The agreed primary is gone and exactly one server on a newer timeline claims primary: follow it (promoted from outside). */
  private async followNewerPrimary(view: ClusterView, s: ClusterState): Promise<boolean> {
    const claimants = this.deps.topology.claimants();
    if (s.primary !== undefined && claimants.some((v) => v.name === s.primary)) return false;
    // Right after a promotion the agreed primary's timeline is not known yet (this leader's checks
    // have not seen it promoted); the old primary, fenced and still claiming, must not look newer
    // than that unknown timeline and be taken back (CI33: a switchover undone this way).
    if (s.primary !== undefined && s.timeline === undefined) return false;
    const newer = claimants.filter((v) => s.primary === undefined || (v.timeline !== undefined && v.timeline > (s.timeline ?? -1)));
    if (newer.length !== 1) return false;
    const p = newer[0]!;
    return this.publish(view, { ...base(s), epoch: s.epoch + 1, phase: 'stable', primary: p.name, timeline: p.timeline }, `${p.name} (timeline ${p.timeline ?? '?'}) is the one primary now${s.primary ? `; ${s.primary} is replaced` : ''}`);
  }

  /** Timeline of the agreed primary, servers fenced and unfenced: recorded without a new epoch. */
  private async keepCurrent(view: ClusterView, s: ClusterState): Promise<void> {
    const { topology } = this.deps;
    const p = s.primary === undefined ? undefined : topology.get(s.primary);
    const timeline = p?.role === 'primary' && p.state === 'up' && p.timeline !== undefined ? p.timeline : s.timeline;
    const claimOthers = topology.claimants().filter((v) => v.name !== s.primary).map((v) => v.name);
    const fenced = [...new Set([...s.fenced.filter((n) => topology.get(n)?.role !== 'replica'), ...claimOthers])].sort();
    if (timeline === s.timeline && fenced.join() === [...s.fenced].sort().join()) return;
    await this.publish(view, { ...base(s), timeline, fenced });
  }

  // ---- the handshake -----------------------------------------------------------------------

  private async finishHandshake(view: ClusterView, s: ClusterState): Promise<void> {
    const { settings, timeline } = this.deps;
    const waiting = settings.members.filter((m) => {
      const rec = view.members.get(m);
      return rec !== undefined && rec.ackEpoch < s.epoch;
    });
    if (waiting.length > 0) return;
    const started = this.handshakeStarted.get(s.epoch);
    if (started !== undefined) {
      this.lastHandshakeMs = this.deps.clock.now() - started;
      this.handshakeStarted.delete(s.epoch);
      this.deps.bus.emit('coordination.handshake', { epoch: s.epoch, durationMs: this.lastHandshakeMs });
    }
    const old = s.old;
    const candidate = s.candidate;
    if (candidate === undefined) return;
    // Someone else promoted a server meanwhile: follow it rather than make a second primary.
    const other = this.deps.topology.claimants().filter((v) => v.name !== old && v.name !== candidate);
    if (other.length === 1 && (s.phase === 'failover' || s.switchover === undefined)) {
      const p = other[0]!;
      timeline.add('warn', 'coordination.state', `epoch ${s.epoch}: ${p.name} became primary without this leader; following it instead of promoting ${candidate}`, { backend: p.name });
      await this.publish(view, { ...base(s), epoch: s.epoch + 1, phase: 'stable', primary: p.name, timeline: p.timeline, candidate: undefined });
      return;
    }
    const login = this.deps.config();
    const target = this.deps.topology.get(candidate);
    try {
      if (!target) throw new Error(`no backend named ${candidate} in this leader's config`);
      if (s.phase === 'switchover' && old !== undefined) await this.catchUp(old, candidate);
      if (target.role !== 'primary') {
        if (!this.lease.valid(settings.etcd.timeout)) return;
        timeline.add('warn', 'failover.promote', `promoting ${candidate} (epoch ${s.epoch}: every live member stopped writing to ${old ?? 'the old primary'})`, { backend: candidate });
        await promoteServer({ name: candidate, host: target.config.host, port: target.config.port }, login);
        timeline.add('info', 'failover.promoted', `${candidate} promoted`, { backend: candidate });
      }
    } catch (e) {
      return this.promotionFailed(view, s, (e as Error).message);
    }
    this.deps.poke(candidate, 'promoted by the cluster leader');
    const result: SwitchoverOutcome | undefined = s.switchover && {
      id: s.switchover.id,
      ok: true,
      from: old,
      to: candidate,
      durationMs: Date.now() - s.switchover.startedAt,
      ...drainedOn(view, s.epoch),
    };
    const published = await this.publish(
      view,
      { ...base(s), epoch: s.epoch + 1, phase: 'stable', primary: candidate, timeline: undefined, fenced: [...new Set([...s.fenced, ...(old ? [old] : [])])], result: result ?? s.result, switchover: undefined },
      `epoch ${s.epoch + 1}: ${candidate} is the primary of the cluster`,
      false,
      s.switchover ? [{ delete: SWITCHOVER }] : [],
    );
    if (!published) return;
    const hookCtx = { oldPrimary: this.deps.endpoint(old), newPrimary: this.deps.endpoint(candidate) };
    void this.deps.hooks().run('on_promote', hookCtx);
    if (s.phase === 'switchover') void this.deps.hooks().run('post_switchover', hookCtx);
  }

  /** A switchover gives up and gives the old primary back; a failover tries the next best replica. */
  private async promotionFailed(view: ClusterView, s: ClusterState, error: string): Promise<void> {
    const { timeline, topology } = this.deps;
    timeline.add('error', 'failover.promote_failed', `epoch ${s.epoch}: ${error}`, { backend: s.candidate });
    if (s.phase === 'switchover' && s.switchover) {
      const result = { id: s.switchover.id, ok: false, from: s.old, to: s.switchover.to, error };
      await this.publish(view, { ...base(s), epoch: s.epoch + 1, phase: 'stable', primary: s.old, result, switchover: undefined }, `switchover to ${s.switchover.to} failed; ${s.old} stays the primary`, false, [{ delete: SWITCHOVER }]);
      return;
    }
    const next = bestReplica(topology, s.old, this.deps.config().failover.maxLagOnFailover);
    if (next && next.name !== s.candidate) await this.publish(view, { ...base(s), candidate: next.name }, `epoch ${s.epoch}: promoting ${next.name} instead`);
  }

  /** Switchover: the target must have replayed everything the drained old primary wrote. */
  private async catchUp(old: string, candidate: string): Promise<void> {
    const { topology, clock } = this.deps;
    const login = this.deps.config();
    const o = topology.get(old);
    const c = topology.get(candidate);
    if (!o || !c) throw new Error(`no backend named ${!o ? old : candidate}`);
    const last = await currentWalLsn({ name: old, host: o.config.host, port: o.config.port }, login);
    const deadline = clock.now() + Math.max(this.deps.config().failover.drainTimeout, 5_000);
    for (;;) {
      const replayed = await replayLsn({ name: candidate, host: c.config.host, port: c.config.port }, login);
      if (replayed !== undefined && replayed >= last) return;
      if (clock.now() > deadline) throw new Error(`${candidate} did not replay up to ${old}'s last position in time`);
      await new Promise<void>((r) => clock.setTimeout(r, CATCH_UP_POLL_MS));
    }
  }

  // ---- writes --------------------------------------------------------------------------------

  /**
   * Write the next state: only while our lease deadline holds, only if `state` is still what we
   * read and the leader key is still on our lease. `handshake`: the epoch starts a handshake.
   */
  private async publish(view: ClusterView, next: Omit<ClusterState, 'by' | 'at'>, message?: string, handshake = false, extra: Write[] = []): Promise<boolean> {
    const full: ClusterState = { ...next, by: this.deps.settings.name, at: Date.now() };
    const ok = await this.write(view, [{ put: STATE, value: JSON.stringify(full) }, ...extra]);
    if (ok && handshake) this.handshakeStarted.set(full.epoch, this.deps.clock.now());
    if (ok && message) this.deps.timeline.add('info', 'coordination.state', message, { backend: full.primary ?? full.candidate });
    return ok;
  }

  private async write(view: ClusterView, writes: Write[]): Promise<boolean> {
    const lease = this.lease.valid(this.deps.settings.etcd.timeout);
    if (lease === undefined) return false;
    const conditions = [
      { key: LEADER, lease },
      view.stateRevision === undefined ? { key: STATE, absent: true as const } : { key: STATE, modRevision: view.stateRevision },
    ];
    return this.deps.store.transact(conditions, writes);
  }

  private once(key: string, fn: () => void): void {
    if (this.reported.has(key)) return;
    this.reported.add(key);
    fn();
  }
}

/** The stable fields of a state, carried into the next one. */
function base(s: ClusterState): Omit<ClusterState, 'by' | 'at'> {
  const { by: _by, at: _at, ...rest } = s;
  return rest;
}

/** Sessions the members closed on the old primary for this switchover epoch, added up. */
function drainedOn(view: ClusterView, epoch: number): { closedIdle: number; closedInTransaction: number } {
  let closedIdle = 0;
  let closedInTransaction = 0;
  for (const m of view.members.values()) {
    if (m.drained?.epoch !== epoch) continue;
    closedIdle += m.drained.idle;
    closedInTransaction += m.drained.inTransaction;
  }
  return { closedIdle, closedInTransaction };
}

function addr(v: { name: string; config: { host: string; port: number } }) {
  return { name: v.name, host: v.config.host, port: v.config.port };
}
