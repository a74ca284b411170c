// What the running proxy looks like from outside (GET /status, the status page, `pgwarden
// status`, the metrics gauges): the topology's view of each backend, each listener's queue and
// candidates, the recent events and the host reading. Types only; control/status.ts builds it.
import type { FailureLayer } from '../health/types';
import type { RecentEvent } from '../events';
import type { HostStatus } from '../host/status';

/** Operator state: drain = no new sessions (existing stay), maint = no traffic at all. */
export type AdminState = 'ready' | 'drain' | 'maint';

export interface BackendStatus {
  name: string;
  host: string;
  port: number;
  /** Health state from the checks. */
  state: 'init' | 'up' | 'down';
  /** Operator state: drain = no new sessions (existing stay), maint = no traffic at all. */
  adminState: AdminState;
  /** true when the split-brain rule keeps writes away from this server. */
  fenced: boolean;
  transitional: boolean;
  role?: 'primary' | 'replica';
  isPrimary: boolean;
  weight: number;
  /** Effective weight after an agent's report (equals weight without an agent). */
  effectiveWeight: number;
  backup: boolean;
  lagBytes?: number;
  lagSeconds?: number;
  sessions: number;
  /** Session startups to this server in flight now (connect until ReadyForQuery), at most proxy.max_concurrent_startups. */
  startupsInFlight: number;
  lastCheck?: { ok: boolean; at: string; durationMs: number; layer?: FailureLayer; message?: string };
  /** Last agent report, when `health.agent` is configured. */
  agent?: { at: string; report: string; reachable: boolean };
  /** What Patroni's REST API said last, when `health.patroni` is configured. */
  patroni?: PatroniStatus;
  /** Why Patroni is taking this server away (no new sessions until it clears); absent: it is not. */
  patroniDrain?: string;
}

/** One backend's member as GET /patroni showed it. */
export interface PatroniStatus {
  /** When pgwarden last asked (ISO time). */
  at: string;
  reachable: boolean;
  error?: string;
  /** Patroni's member name (from its REST API, or the DCS member whose conn_url is this server). */
  name?: string;
  scope?: string;
  version?: string;
  role?: string;
  state?: string;
  timeline?: number;
  pendingRestart: boolean;
  noFailover: boolean;
  scheduledRestart?: string;
  pause: boolean;
  syncStandby: boolean;
}

export interface ListenerStatus {
  name: string;
  bind: string;
  route: 'primary' | 'replica' | 'any';
  balance: string;
  fallback: string;
  sessions: number;
  queued: number;
  /** Some backend can take a new session right now. */
  hasCandidate: boolean;
  /** Why not, when hasCandidate is false. */
  reason?: string;
}

export interface StatusSnapshot {
  version: string;
  startedAt: string;
  primary?: string;
  listeners: ListenerStatus[];
  backends: BackendStatus[];
  /** Newest last, at most 200. */
  events: RecentEvent[];
  host?: HostStatus;
  /** Present when this instance coordinates with others through etcd. */
  coordination?: CoordinationStatus;
  /** Present with `health.patroni` (each backend's member is in `backends[].patroni`). */
  patroni?: PatroniClusterStatus;
}

/** `health.patroni`: what pgwarden reads from Patroni's DCS, when `dcs` is configured. */
export interface PatroniClusterStatus {
  dcs?: {
    /** The key watched: `<namespace>/<scope>/failover`. */
    key: string;
    reachable: boolean;
    error?: string;
    /** The member holding Patroni's leader key. */
    leader?: string;
    /** A switchover or failover requested and not yet done. */
    failover?: { leader?: string; candidate?: string; scheduledAt?: string };
    /** The backend drained in advance of that switchover. */
    draining?: string;
  };
}

/** Several instances through etcd (status of this member's view). */
export interface CoordinationStatus {
  /** This instance. */
  name: string;
  quorum: number;
  leader?: string;
  isLeader: boolean;
  epoch?: number;
  phase?: string;
  /** The primary the cluster agreed on, its timeline, and the servers the cluster fences. */
  primary?: string;
  timeline?: number;
  fenced: string[];
  candidate?: string;
  members: { name: string; alive: boolean; ackEpoch?: number; lagging: boolean; votesDown: boolean; leader: boolean }[];
  etcd: { reachable: boolean; endpoints: string[]; leaseRemainingMs?: number; lastError?: string; onLoss: string };
  /** Last failover or switchover handshake this instance led: publish → every live member acknowledged (ms). */
  lastHandshakeMs?: number;
}
