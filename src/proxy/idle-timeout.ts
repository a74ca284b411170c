// proxy.client_idle_timeout: closes sessions that stay idle between transactions (ReadyForQuery
// 'I', nothing in flight) for that long, like PostgreSQL's idle_session_timeout, so a client
// that keeps a connection it never uses does not hold a server backend for ever. One sweep timer
// per listener, not a timer per session; a session counts as idle from the first sweep that saw
// it idle with the same ReadyForQuery count, so it is closed between timeout and 1.5 × timeout.
import type { Clock } from '../clock';

export interface IdleSession {
  /** The ReadyForQuery count while idle, undefined while busy (see Session.idleMark). */
  readonly idleMark: number | undefined;
  closeIdle(timeoutMs: number): void;
}

export class IdleTimeout {
  private since = new Map<IdleSession, { mark: number; at: number }>();
  private timer?: { clear(): void };

  constructor(
    private readonly clock: Clock,
    private readonly sessions: () => Iterable<IdleSession>,
    private readonly timeoutMs: () => number,
  ) {}

  /** Starts (or, after a reload changed the timeout, restarts) the sweeps; 0 stops them. */
  start(): void {
    this.stop();
    const ms = this.timeoutMs();
    if (ms <= 0) return;
    const tick = () => {
      this.sweep(ms);
      this.timer = this.clock.setTimeout(tick, Math.max(1, ms / 2));
    };
    this.timer = this.clock.setTimeout(tick, Math.max(1, ms / 2));
  }

  stop(): void {
    this.timer?.clear();
    this.timer = undefined;
    this.since.clear();
  }

  /** One sweep: closes the sessions idle (same mark) for at least `ms`. */
  sweep(ms: number): void {
    const now = this.clock.now();
    const next = new Map<IdleSession, { mark: number; at: number }>();
    for (const s of this.sessions()) {
      const mark = s.idleMark;
      if (mark === undefined) continue;
      const seen = this.since.get(s);
      const at = seen !== undefined && seen.mark === mark ? seen.at : now;
      if (now - at >= ms) s.closeIdle(ms);
      else next.set(s, { mark, at });
    }
    this.since = next;
  }
}
