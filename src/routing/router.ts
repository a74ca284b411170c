// Routes new sessions of one listener: candidates → balancer → a backend. When there is no
// candidate, the session waits in a bounded FIFO queue and is woken by the next topology change
// (a replica promoted, a server back up) instead of being refused; past `queue_timeout` it gets
// 57P03 with the reason, and a full queue answers 53300 at once. A candidate that already has
// proxy.max_concurrent_startups startups in flight (startup-slots.ts) is not taken either: the
// session waits in the same queue and is woken when a startup to it ends.
import { realClock, type Clock } from '../clock';
import type { FailoverConfig, ListenerConfig } from '../config/types';
import { Balancer } from './balancer';
import { candidatesFor } from './candidates';
import type { BackendView, Topology } from './topology';
import { RoutingError } from '../errors';
import type { StartupSlots } from './startup-slots';

/** Backends this session must skip right now (they just refused it); re-read at every wake. */
export type ExcludeFn = () => ReadonlySet<string>;

interface Waiter {
  readonly exclude: ExcludeFn;
  resolve(v: BackendView): void;
  reject(e: RoutingError): void;
  timer: { clear(): void };
}

export class Router {
  private readonly queue: Waiter[] = [];
  private readonly onChange = () => this.wake();
  private closed = false;
  private readonly stopWaking?: () => void;

  private balancer!: Balancer;

  constructor(
    public listener: ListenerConfig,
    private readonly topology: Topology,
    /** Read at every decision, so a reload's queue settings apply at once. */
    private readonly failoverConfig: FailoverConfig | (() => FailoverConfig),
    private readonly random?: () => number,
    /** Reports every session that leaves the queue and how long it waited. */
    private readonly onDequeued?: (waitMs: number, outcome: 'served' | 'timeout' | 'full' | 'gone' | 'shutdown') => void,
    /** Time for waits and queue timeouts (a FakeClock in tests); its timers are unref()'d. */
    private readonly clock: Clock = realClock,
    /** Startups in flight per server; a backend picked here has one taken for the session, which releases it. */
    private readonly slots?: StartupSlots,
  ) {
    this.reconfigure(listener);
    topology.on('change', this.onChange);
    this.stopWaking = slots?.onRoom(this.onChange);
  }

  private get failover(): FailoverConfig {
    return typeof this.failoverConfig === 'function' ? this.failoverConfig() : this.failoverConfig;
  }

  /** New listener settings (reload): a fresh balancer for the new algorithm. */
  reconfigure(listener: ListenerConfig): void {
    this.listener = listener;
    this.balancer = new Balancer(listener.balance, this.random);
    this.wake();
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Pick a backend now, or undefined (no waiting); one with no startup slot free is not a pick. */
  pickNow(exclude?: ReadonlySet<string>): BackendView | undefined {
    const backends = candidatesFor(this.listener, this.topology, exclude).backends;
    const slots = this.slots;
    if (!slots || backends.every((b) => slots.hasRoom(b.name))) return this.balancer.pick(backends);
    return this.balancer.pick(backends.filter((b) => slots.hasRoom(b.name)));
  }

  /** pickNow, and the startup slot on the backend taken for the session (which releases it). */
  private take(exclude?: ReadonlySet<string>): BackendView | undefined {
    const b = this.pickNow(exclude);
    if (b) this.slots?.take(b.name);
    return b;
  }

  /** Some candidate (before a session's own exclusions) has a startup slot free. */
  private anyRoom(): boolean {
    const slots = this.slots;
    return !slots || candidatesFor(this.listener, this.topology).backends.some((b) => slots.hasRoom(b.name));
  }

  /** Why a session waits: no candidate (the topology's reason), or every candidate at max_concurrent_startups. */
  private waitReason(exclude: ReadonlySet<string>): string | undefined {
    const set = candidatesFor(this.listener, this.topology, exclude);
    if (set.reason !== undefined || !this.slots || set.backends.length === 0) return set.reason;
    const busy = set.backends.map((b) => `${b.name} ${this.slots!.count(b.name)} in flight`).join(', ');
    return `every server for listener ${this.listener.name} has proxy.max_concurrent_startups (${this.slots.max}) startups in flight: ${busy}`;
  }

  /**
   * Resolve with a backend as soon as one is a candidate, waiting at most until `deadline`, a
   * time on the router's clock (with the real clock, ms since epoch as from Date.now()).
   * `signal` aborts the wait (the client went away); as a function it is only asked for when
   * the session has to wait, so the common case creates no AbortController.
   */
  acquire(exclude: ExcludeFn, deadline: number, signal: AbortSignal | (() => AbortSignal)): Promise<BackendView> {
    const now = this.take(exclude());
    if (now) return Promise.resolve(now);
    if (this.closed) return Promise.reject(new RoutingError('PGW_SHUTTING_DOWN', 'pgwarden is shutting down'));
    // queue_size bounds the sessions waiting for a server to exist. Sessions that only wait for
    // a startup slot on a server that is there would all have been served without the limit:
    // they are not refused for it (the listener's max_connections bounds them).
    const slotsOnly = this.slots !== undefined && candidatesFor(this.listener, this.topology, exclude()).backends.length > 0;
    if (!slotsOnly && this.queue.length >= this.failover.queueSize) {
      this.onDequeued?.(0, 'full');
      const reason = this.waitReason(exclude()) ?? '';
      return Promise.reject(
        new RoutingError('PGW_QUEUE_FULL', `too many clients waiting on listener ${this.listener.name} (queue_size ${this.failover.queueSize}); ${reason}`),
      );
    }
    const since = this.clock.now();
    const done = (outcome: 'served' | 'timeout' | 'gone' | 'shutdown') => this.onDequeued?.(this.clock.now() - since, outcome);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        exclude,
        resolve: (v) => {
          done('served');
          resolve(v);
        },
        reject: (e) => {
          done(e.code === 'PGW_SHUTTING_DOWN' ? 'shutdown' : e.code === 'PGW_CLIENT_GONE' ? 'gone' : 'timeout');
          reject(e);
        },
        timer: this.clock.setTimeout(() => {
          this.remove(waiter);
          const reason = this.waitReason(exclude()) ?? `no backend available for listener ${this.listener.name}`;
          waiter.reject(new RoutingError('PGW_QUEUE_TIMEOUT', `${reason} (waited ${Math.round(this.failover.queueTimeout / 1000)} s, queue_timeout)`));
        }, Math.max(0, deadline - this.clock.now())),
      };
      (typeof signal === 'function' ? signal() : signal).addEventListener('abort', () => {
        if (this.remove(waiter)) waiter.reject(new RoutingError('PGW_CLIENT_GONE', 'client disconnected while waiting'));
      }, { once: true });
      this.queue.push(waiter);
    });
  }

  /** Reject every waiter (shutdown) and stop listening to the topology. */
  close(): void {
    this.closed = true;
    this.topology.off('change', this.onChange);
    this.stopWaking?.();
    for (const w of this.queue.splice(0)) {
      w.timer.clear();
      w.reject(new RoutingError('PGW_SHUTTING_DOWN', 'pgwarden is shutting down'));
    }
  }

  private wake(): void {
    // FIFO: the oldest waiter is served first. Candidates differ per waiter only through its
    // `exclude`, so a waiter that still has none does not block the ones behind it. Once no
    // candidate has a startup slot free nobody behind can be served either: a release wakes
    // one waiter, not a walk through a queue of thousands.
    for (let i = 0; i < this.queue.length; ) {
      if (!this.anyRoom()) return;
      const w = this.queue[i]!;
      const b = this.take(w.exclude());
      if (!b) {
        i++;
        continue;
      }
      this.queue.splice(i, 1);
      w.timer.clear();
      w.resolve(b);
    }
  }

  private remove(w: Waiter): boolean {
    const i = this.queue.indexOf(w);
    if (i < 0) return false;
    this.queue.splice(i, 1);
    w.timer.clear();
    return true;
  }
}
