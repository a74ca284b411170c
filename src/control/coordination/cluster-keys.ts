// What the instances of one cluster keep in etcd, under coordination.etcd.prefix, and how it is
// read back. Every value is JSON written by pgwarden; a value that does not parse (written by
// hand, by another version) reads as absent and is reported, never thrown.
//
//   leader              the leader's name, on the leader's lease; created only when absent
//   state               ClusterState; written only by the leader, conditioned on what it read
//   members/<name>      MemberRecord, on the member's lease: alive, the epoch it acknowledged,
//                       and where it takes CancelRequests for keys it issued
//   votes/<name>        Vote, on the member's lease: "the primary of epoch N is down" here
//   switchover          SwitchoverRequest, from any member; the leader runs it and removes it
import type { StoreSnapshot } from '../../coordination/store';

export const LEADER = 'leader';
export const STATE = 'state';
export const SWITCHOVER = 'switchover';
export const memberKey = (name: string) => `members/${name}`;
export const voteKey = (name: string) => `votes/${name}`;

/**
 * - stable: `primary` takes writes (none: no primary yet, writes wait).
 * - failover: the primary of the previous epoch (`old`) is down for a quorum; no server takes
 *   writes; once every live member acknowledged this epoch the leader promotes `candidate`.
 * - switchover: a planned switchover from `old` to `candidate`; members drain `old` at
 *   transaction boundaries before they acknowledge.
 */
export type Phase = 'stable' | 'failover' | 'switchover';

export interface ClusterState {
  readonly epoch: number;
  readonly phase: Phase;
  readonly primary?: string;
  readonly timeline?: number;
  readonly fenced: readonly string[];
  readonly old?: string;
  readonly candidate?: string;
  /** The switchover this epoch runs (phase switchover) or ran last (its result). */
  readonly switchover?: { readonly id: string; readonly to: string; readonly by: string; readonly startedAt: number };
  readonly result?: SwitchoverOutcome;
  /** Who wrote this state, and when (wall clock ms): for people reading etcd. */
  readonly by: string;
  readonly at: number;
}

export interface SwitchoverOutcome {
  readonly id: string;
  readonly ok: boolean;
  readonly from?: string;
  readonly to: string;
  readonly error?: string;
  readonly durationMs?: number;
  /** Sessions every member closed on the old primary: at a transaction boundary, or at drain_timeout. */
  readonly closedIdle?: number;
  readonly closedInTransaction?: number;
}

export interface MemberRecord {
  readonly name: string;
  /** The newest epoch this member has applied (sessions on a replaced primary closed). */
  readonly ackEpoch: number;
  /** Its drain of the last switchover epoch. */
  readonly drained?: { readonly epoch: number; readonly idle: number; readonly inTransaction: number };
  /** Its key tag and, per listener name, where it takes a CancelRequest (cancel-addresses.ts). */
  readonly cancel?: MemberCancel;
  readonly at: number;
}

export interface MemberCancel {
  readonly tag: number;
  readonly listeners: Readonly<Record<string, { readonly host: string; readonly port: number }>>;
}

export interface Vote {
  /** The epoch and primary this member finds down. */
  readonly epoch: number;
  readonly primary: string;
  readonly at: number;
}

export interface SwitchoverRequest {
  readonly id: string;
  readonly to: string;
  readonly by: string;
  readonly at: number;
}

/** One read of the cluster's keys, parsed. */
export interface ClusterView {
  readonly revision: string;
  readonly leader?: { readonly name: string; readonly lease: string };
  readonly state?: ClusterState;
  /** modRevision of `state` (undefined: absent), the condition of the leader's next write. */
  readonly stateRevision?: string;
  readonly members: ReadonlyMap<string, MemberRecord>;
  readonly votes: ReadonlyMap<string, Vote>;
  readonly switchover?: SwitchoverRequest;
  /** Keys whose value did not parse. */
  readonly unreadable: readonly string[];
}

export function readCluster(snap: StoreSnapshot): ClusterView {
  const unreadable: string[] = [];
  const parse = <T>(key: string, ok: (v: Record<string, unknown>) => boolean): T | undefined => {
    const raw = snap.keys.get(key)?.value;
    if (raw === undefined) return undefined;
    try {
      const v: unknown = JSON.parse(raw);
      if (typeof v === 'object' && v !== null && ok(v as Record<string, unknown>)) return v as T;
    } catch {
      /* reported below */
    }
    unreadable.push(key);
    return undefined;
  };
  const leaderKey = snap.keys.get(LEADER);
  const members = new Map<string, MemberRecord>();
  const votes = new Map<string, Vote>();
  for (const key of snap.keys.keys()) {
    if (key.startsWith('members/')) {
      const m = parse<MemberRecord>(key, (v) => typeof v.ackEpoch === 'number');
      if (m) members.set(key.slice('members/'.length), m);
    } else if (key.startsWith('votes/')) {
      const v = parse<Vote>(key, (x) => typeof x.epoch === 'number' && typeof x.primary === 'string');
      if (v) votes.set(key.slice('votes/'.length), v);
    }
  }
  const state = parse<ClusterState>(STATE, (v) => typeof v.epoch === 'number' && typeof v.phase === 'string' && Array.isArray(v.fenced));
  return {
    revision: snap.revision,
    ...(leaderKey ? { leader: { name: leaderKey.value, lease: leaderKey.lease } } : {}),
    ...(state ? { state, stateRevision: snap.keys.get(STATE)!.modRevision } : {}),
    members,
    votes,
    switchover: parse<SwitchoverRequest>(SWITCHOVER, (v) => typeof v.id === 'string' && typeof v.to === 'string'),
    unreadable,
  };
}

/** A majority of the static member list. */
export function quorum(members: readonly string[]): number {
  return Math.floor(members.length / 2) + 1;
}
