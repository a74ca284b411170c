// This instance's etcd lease, and our own deadline for it. The deadline is the time the last
// successful renewal was SENT plus the TTL etcd granted: etcd cannot have expired the lease
// before then, whatever the network or a paused process did. Nothing here trusts a client-side
// "lost" event: a leader asks `valid()` before every promotion and publication, so a process
// that was stopped (SIGSTOP) past its lease finds its deadline gone when it wakes.
import type { Clock } from '../../clock';
import type { CoordinationStore } from '../../coordination/store';

export interface LeaseEvents {
  /** The lease is held again (first grant, or a new one after a loss). */
  held(lease: string): void;
  /** Our deadline passed without a renewal, or etcd said the lease is gone. */
  lost(reason: string): void;
}

export class LeaseKeeper {
  private id: string | undefined;
  private deadline = 0;
  private timer?: { clear(): void };
  private closed = false;
  private renewing = false;
  lastError: string | undefined;

  constructor(
    private readonly store: CoordinationStore,
    private readonly ttlMs: number,
    private readonly clock: Clock,
    private readonly events: LeaseEvents,
  ) {}

  start(): void {
    void this.renew();
  }

  /** The lease, while our deadline has not passed (with `marginMs` to spare). */
  valid(marginMs = 0): string | undefined {
    return this.id !== undefined && this.clock.now() + marginMs < this.deadline ? this.id : undefined;
  }

  /** ms until our deadline (negative: passed). */
  remaining(): number {
    return this.deadline - this.clock.now();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.timer?.clear();
    const id = this.id;
    this.id = undefined;
    // Revoked so the other members see this one leave now, not a TTL later.
    if (id !== undefined) await this.store.revoke(id);
  }

  private async renew(): Promise<void> {
    if (this.closed || this.renewing) return;
    this.renewing = true;
    const sentAt = this.clock.now();
    try {
      if (this.id === undefined || this.clock.now() >= this.deadline) {
        if (this.id !== undefined) this.drop(`no renewal before our lease deadline${this.lastError ? ` (${this.lastError})` : ''}`);
        const granted = await this.store.grant(this.ttlMs);
        if (this.closed) return void this.store.revoke(granted.id);
        this.id = granted.id;
        this.deadline = sentAt + granted.ttlMs;
        this.lastError = undefined;
        this.events.held(granted.id);
      } else {
        const left = await this.store.keepAlive(this.id);
        if (left <= 0) {
          this.drop('etcd says the lease expired');
        } else {
          this.deadline = sentAt + left;
          this.lastError = undefined;
        }
      }
    } catch (e) {
      this.lastError = (e as Error).message;
      if (this.id !== undefined && this.clock.now() >= this.deadline) this.drop(`no renewal before our lease deadline (${this.lastError})`);
    } finally {
      this.renewing = false;
      this.schedule();
    }
  }

  private drop(reason: string): void {
    if (this.id === undefined) return;
    this.id = undefined;
    this.deadline = 0;
    this.events.lost(reason);
  }

  private schedule(): void {
    if (this.closed) return;
    // A third of the TTL while held (two renewals may fail before the deadline); retry a lost
    // lease sooner, and wake exactly at the deadline so a loss is noticed on time.
    const period = this.id === undefined ? Math.min(1_000, this.ttlMs / 3) : this.ttlMs / 3;
    const untilDeadline = this.id === undefined ? period : Math.max(1, this.deadline - this.clock.now());
    this.timer = this.clock.setTimeout(() => void this.renew(), Math.min(period, untilDeadline));
  }
}
