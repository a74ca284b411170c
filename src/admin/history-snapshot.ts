// What GET /history answers and the status page's "Last 15 minutes" charts draw: samples the
// proxy took every few seconds (control/history.ts keeps them) and the failovers and switchovers
// that happened meanwhile. Types only. Times are epoch milliseconds of the proxy's clock; `now`
// lets the page place them without trusting the browser's clock.

export interface HistoryPoint {
  t: number;
  /** Sessions open per listener. */
  sessions: Record<string, number>;
  /** Sessions waiting in the queue per listener. */
  queued: Record<string, number>;
  /** Client traffic since the previous point: in = from clients, out = to clients. */
  bytesPerSecond: { in: number; out: number };
  /** Replicas that were up, by backend; a backend absent from a point had no lag then. */
  lag: Record<string, { bytes?: number; seconds?: number }>;
}

/** A failover or switchover step, drawn as a vertical marker (a timeline event of the same name). */
export interface HistoryMarker {
  t: number;
  event: string;
  message: string;
  backend?: string;
}

export interface HistorySnapshot {
  /** Time between points. */
  intervalMs: number;
  /** How far back points and markers go. */
  windowMs: number;
  now: number;
  /** Oldest first. */
  points: HistoryPoint[];
  /** Oldest first, within the window. */
  markers: HistoryMarker[];
}
