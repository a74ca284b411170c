// Closes sessions at a transaction boundary without cutting a client between two statements:
// a session is closed only when it was idle (ReadyForQuery 'I', nothing in flight) at the
// previous sweep and still is with the same ReadyForQuery count — idle for a whole sweep period,
// not in the microseconds before its next statement arrives. Swept by drainAtBoundaries
// (drain.ts), which the planned switchover and a graceful shutdown both run. A session that will
// move rather than close (sessions.survive) is taken at any idle boundary: its client is paused,
// so a statement it sends meanwhile waits for the new server instead of being cut — a session a
// busy pool hands out every few ms has no idle sweep period and would otherwise reach the
// drain_timeout mid-statement.
import type { Session } from '../proxy/session';

export class IdleCloser {
  private seen = new Map<Session, number>();

  /** One sweep: close (with `close`) the sessions idle since the last sweep; returns how many. */
  sweep(sessions: Iterable<Session>, close: (s: Session) => void, takeAtOnce: (s: Session) => boolean = () => false): number {
    const now = new Map<Session, number>();
    let closed = 0;
    for (const s of sessions) {
      const mark = s.idleMark;
      if (mark === undefined) continue;
      if (this.seen.get(s) === mark || takeAtOnce(s)) {
        close(s);
        closed++;
      } else now.set(s, mark);
    }
    this.seen = now;
    return closed;
  }
}
