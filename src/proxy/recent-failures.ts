// Backends that refused this session a moment ago. A session skips them while it redispatches,
// but only for a short window: once the health check has had time to look again, a restarted
// server is worth another try for a client that is still waiting in the queue.
import type { Clock } from '../clock';

export class RecentFailures {
  private readonly at = new Map<string, number>();

  constructor(
    private readonly windowMs: number,
    private readonly clock: Pick<Clock, 'now'>,
  ) {}

  add(name: string): void {
    this.at.set(name, this.clock.now());
  }

  active(now = this.clock.now()): ReadonlySet<string> {
    const out = new Set<string>();
    for (const [name, t] of this.at) {
      if (now - t < this.windowMs) out.add(name);
      else this.at.delete(name);
    }
    return out;
  }
}
