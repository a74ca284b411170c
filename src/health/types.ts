// Shared vocabulary of the health subsystem: what a probe returns and what a checker reports.

/** Failure layers, HAProxy check.c style: each failure names where it happened. */
export type FailureLayer = 'L4CON' | 'L4TOUT' | 'L6TLS' | 'L7AUTH' | 'L7QUERY' | 'L7RSP' | 'L7TOUT' | 'L7FULL' | 'SOCKERR';

export const FAILURE_DESCRIPTIONS: Readonly<Record<FailureLayer, string>> = Object.freeze({
  L4CON: 'L4 connection refused or reset',
  L4TOUT: 'L4 connect timeout',
  L6TLS: 'L6 TLS handshake failed',
  L7AUTH: 'L7 authentication failed',
  L7QUERY: 'L7 check query failed',
  L7RSP: 'L7 answer is not the PostgreSQL protocol',
  L7TOUT: 'L7 check timed out after connect',
  L7FULL: 'L7 server full (53300 too many connections)',
  SOCKERR: 'pgwarden out of file descriptors',
});

/**
 * Failures that say nothing against the server, so they move neither `rise` nor `fall` (the
 * server keeps the state it had):
 * - L7FULL: the server refused the check's new connection with 53300 (max_connections or the
 *   role's connection limit reached). It is running and answering; it is full, not down.
 *   Marking it down would drain every session on it and, in promote mode, start a failover.
 * - SOCKERR: pgwarden itself could not open a socket (EMFILE/ENFILE). That is this process's
 *   trouble, not the server's.
 */
export const NO_VERDICT_LAYERS: ReadonlySet<FailureLayer> = new Set<FailureLayer>(['L7FULL', 'SOCKERR']);

/** What one check result says about the server: for it, against it, or nothing. */
export function verdictOf(result: ProbeResult): 'success' | 'failure' | 'no-verdict' {
  if (result.ok) return 'success';
  return NO_VERDICT_LAYERS.has(result.layer) ? 'no-verdict' : 'failure';
}

/** Errno codes of a process (EMFILE) or system (ENFILE) out of file descriptors. */
export function outOfDescriptors(code: unknown): boolean {
  return code === 'EMFILE' || code === 'ENFILE';
}

export type DetectedRole = 'primary' | 'replica';

/**
 * The phases of one check, in order: TCP connect, TLS handshake, startup and authentication
 * (until ReadyForQuery, so the backend's fork is in it), and the check query's round trip. A
 * check on the kept connection has only `query`; a tcp check only `connect`.
 */
export type CheckPhase = 'connect' | 'tls' | 'auth' | 'query';
export const CHECK_PHASES: readonly CheckPhase[] = Object.freeze(['connect', 'tls', 'auth', 'query']);

/**
 * Milliseconds spent in each phase that ran, the one a failure ended in included (a refused
 * connect or a timeout shows where the time went). Only checks carry them, never role polls.
 */
export type PhaseTimings = Readonly<Partial<Record<CheckPhase, number>>>;

export interface ProbeSuccess {
  readonly ok: true;
  /** Role reported by the server (postgres check) or taken from the config (tcp check). */
  readonly role: DetectedRole;
  /** pg_current_wal_lsn() on a primary, as a byte position. */
  readonly currentLsn?: bigint;
  /** pg_last_wal_receive_lsn() / pg_last_wal_replay_lsn() on a replica. */
  readonly receiveLsn?: bigint;
  readonly replayLsn?: bigint;
  /** Timeline of a primary (from its current WAL file name). */
  readonly timeline?: number;
  /** Seconds since the last replayed transaction, 0 when fully caught up. */
  readonly replayLagSeconds?: number;
  readonly durationMs: number;
  readonly phases?: PhaseTimings;
}

export interface ProbeFailure {
  readonly ok: false;
  readonly layer: FailureLayer;
  /** Human-readable detail, e.g. "connect ECONNREFUSED 127.0.0.1:5432". Never contains a password. */
  readonly message: string;
  readonly durationMs: number;
  readonly phases?: PhaseTimings;
}

export type ProbeResult = ProbeSuccess | ProbeFailure;

/**
 * One probe attempt; must settle (never reject) within the timeout it was given. A probe may
 * hold a resource between attempts (the postgres check keeps its connection); `close` frees it.
 * `poll`, when the probe has one, is a role poll: the cheapest round trip on the kept connection
 * that tells whether the server is still in recovery. Its success carries the role only (no
 * positions), so it is not a check: the checker uses it during a failover to decide when to run
 * one. It fails when there is no kept connection to poll on.
 */
export type Probe = ((signal: AbortSignal) => Promise<ProbeResult>) & { close?(): void; poll?(signal: AbortSignal): Promise<ProbeResult> };
