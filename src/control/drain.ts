// Closing sessions at transaction boundaries: the one drain routine that a graceful shutdown
// (every session, up to shutdown_timeout) and a planned switchover (the sessions on the old
// primary, up to drain_timeout) both run, and the immediate close of one backend's sessions
// (down, maint, fenced, moved by a reload).
import type { CloseReason } from '../proxy/close-reason';
import type { Session } from '../proxy/session';
import { IdleCloser } from './idle-closer';
import { SqlState } from '../errors';
import type { Clock } from '../clock';

export interface DrainOptions {
  /** The sessions still to drain, read again at every sweep (sessions also end on their own). */
  sessions(): Session[];
  timeoutMs: number;
  /** Sweep period: a session is closed once it has been idle for a whole period. */
  pollMs: number;
  reason: CloseReason;
  /** FATAL text for a session closed idle at a transaction boundary. */
  idleMessage: string;
  /** FATAL text for a session still open at the deadline. */
  timeoutMessage: string;
  /** Time for the deadline and the sweeps (a FakeClock in tests); default real time with a ref'd pause. */
  clock?: Clock;
  /**
   * At every sweep, send sessions whose server has not answered yet back to routing (the client
   * has seen nothing of it) instead of letting them log in and start a transaction there.
   */
  rerouteUnanswered?: boolean;
}

export interface DrainResult {
  /** Closed at a transaction boundary (or still logging in at the deadline: no transaction yet). */
  closedIdle: number;
  /** Still in a transaction or a statement at the deadline, and closed anyway. */
  closedInTransaction: number;
  /** Sessions still open at the deadline (idle or not); all were closed then. */
  leftAtDeadline: number;
}

/**
 * Until `timeoutMs` has passed or no session is left: every `pollMs`, close the sessions that
 * have been idle since the previous sweep (IdleCloser). Then close what is left, counting the
 * ones cut inside a transaction.
 */
export async function drainAtBoundaries(o: DrainOptions): Promise<DrainResult> {
  const now = o.clock ? () => o.clock!.now() : Date.now;
  const pause = o.clock ? (ms: number) => new Promise<void>((r) => o.clock!.setTimeout(r, ms)) : sleep;
  const deadline = now() + o.timeoutMs;
  const idle = new IdleCloser();
  let closedIdle = 0;
  while (now() < deadline && o.sessions().length > 0) {
    if (o.rerouteUnanswered) for (const s of o.sessions()) if (s.awaitingServer) s.closeAtBoundary(SqlState.ADMIN_SHUTDOWN, o.idleMessage, o.reason);
    closedIdle += idle.sweep(
      o.sessions(),
      (s) => s.closeAtBoundary(SqlState.ADMIN_SHUTDOWN, o.idleMessage, o.reason),
      (s) => s.wouldMoveFor?.(o.reason) === true,
    );
    await pause(Math.min(o.pollMs, Math.max(1, deadline - now())));
  }
  const left = [...o.sessions()];
  let closedInTransaction = 0;
  for (const s of left) {
    // A session still logging in has no transaction yet: it counts as idle.
    if (s.isEstablished && (s.inTransaction || !s.isIdle)) closedInTransaction++;
    else closedIdle++;
    s.closeAtBoundary(SqlState.ADMIN_SHUTDOWN, o.timeoutMessage, o.reason);
  }
  return { closedIdle, closedInTransaction, leftAtDeadline: left.length };
}

/** Close these sessions now: each at its next message boundary, with a FATAL when possible. */
export function closeSessions(sessions: Iterable<Session>, reason: CloseReason, sqlstate: string, message: string): void {
  for (const s of sessions) s.closeAtBoundary(sqlstate, message, reason);
}

// A ref'd timer on purpose: the caller awaits the drain, and an unref'd pause would let the
// process exit in the middle of it when nothing else holds the event loop. It never outlives
// the deadline.
function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
