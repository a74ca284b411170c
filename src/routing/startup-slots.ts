// How many session startups pgwarden has in flight to each server, bounded by
// proxy.max_concurrent_startups. A startup is in flight from the moment the router hands a
// session its backend (the TCP connect follows) until the server's first ReadyForQuery, or until
// the attempt fails or the session ends.
//
// Why: PostgreSQL forks a backend per connection and then initialises it (catalog caches,
// authentication); a crowd of thousands released at once (the queue emptying onto a new
// primary, a fleet of pools reconnecting) makes the server thrash — every startup slows every
// other one, startups pass startup_timeout, are given up and retried, and the server does the
// work twice. A bounded number in flight keeps the server busy at its own pace; the others wait
// in the listener's queue (in order, within queue_timeout) and go as slots free up.
//
// One instance for the whole proxy (the bound is per server, whatever the listener). Nothing
// here runs per message: take() when a session is routed, release() once when its startup ends.
// Pure bookkeeping: no sockets, no timers.

export class StartupSlots {
  private readonly inFlight = new Map<string, number>();
  private readonly peaks = new Map<string, number>();
  private readonly waiters = new Set<() => void>();

  /** `limit()` is read at every decision, so a reload applies at once; 0 means no limit. */
  constructor(private readonly limit: () => number) {}

  /** Room for one more startup to `backend` now. */
  hasRoom(backend: string): boolean {
    const max = this.limit();
    return max <= 0 || (this.inFlight.get(backend) ?? 0) < max;
  }

  /** Count one startup to `backend` (the caller checked hasRoom in the same turn). */
  take(backend: string): void {
    const n = (this.inFlight.get(backend) ?? 0) + 1;
    this.inFlight.set(backend, n);
    if (n > (this.peaks.get(backend) ?? 0)) this.peaks.set(backend, n);
  }

  /** One startup to `backend` ended (ready, failed, or its session went away): wake whoever waits. */
  release(backend: string): void {
    const n = (this.inFlight.get(backend) ?? 0) - 1;
    if (n > 0) this.inFlight.set(backend, n);
    else this.inFlight.delete(backend);
    this.roomMade();
  }

  /** Startups to `backend` in flight now. */
  count(backend: string): number {
    return this.inFlight.get(backend) ?? 0;
  }

  /** The most startups ever in flight at once to `backend` since pgwarden started. */
  peak(backend: string): number {
    return this.peaks.get(backend) ?? 0;
  }

  get max(): number {
    return this.limit();
  }

  /** `fn` runs whenever room may have been made (a release, a raised limit). Returns its disposer. */
  onRoom(fn: () => void): () => void {
    this.waiters.add(fn);
    return () => this.waiters.delete(fn);
  }

  /** A reload may have raised the limit. */
  roomMade(): void {
    for (const fn of this.waiters) fn();
  }
}
