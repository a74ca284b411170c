// The recent-events timeline shown on the status page: every state change, failover step, hook
// run and reload, newest last, bounded. Each entry is also one structured log line with the same
// event name, and goes out on the bus for metrics and hooks.
import type { Bus, RecentEvent } from '../events';
import type { Logger } from '../logger';

const MAX_EVENTS = 200;

export class Timeline {
  private readonly events: RecentEvent[] = [];

  constructor(private readonly bus: Bus, private readonly log: Logger) {}

  /** Record, log and publish one event. `fields` go to the log line only. */
  add(level: RecentEvent['level'], event: string, message: string, fields: Record<string, unknown> = {}): void {
    const entry: RecentEvent = {
      time: new Date().toISOString(),
      event,
      level,
      message,
      ...(typeof fields.backend === 'string' && { backend: fields.backend }),
      ...(typeof fields.listener === 'string' && { listener: fields.listener }),
    };
    this.events.push(entry);
    if (this.events.length > MAX_EVENTS) this.events.splice(0, this.events.length - MAX_EVENTS);
    this.log[level]({ event, ...fields }, message);
    this.bus.emit('timeline', entry);
  }

  /** Record an event that something else already logged (e.g. a hook runner). */
  record(entry: RecentEvent): void {
    this.events.push(entry);
    if (this.events.length > MAX_EVENTS) this.events.splice(0, this.events.length - MAX_EVENTS);
  }

  recent(): RecentEvent[] {
    return [...this.events];
  }
}
