// The injectable time source (ground floor: imports nothing): the real one and a fake one that
// tests drive by hand, so health checks, host sampling, the routing queue, switchover, primary
// loss and the quiet-GC timer are tested without sleeping.

/** Injected time source: now() in ms, and one-shot timers that return their own disposer. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): { clear(): void };
}

/** Wall-clock time and Node timers; every timer is unref()'d so no component keeps the process alive. */
export const realClock: Clock = Object.freeze({
  now: () => Date.now(),
  setTimeout(fn: () => void, ms: number) {
    const handle = setTimeout(fn, Math.max(0, ms));
    handle.unref();
    return { clear: () => clearTimeout(handle) };
  },
});

interface FakeTimer {
  readonly id: number;
  readonly due: number;
  readonly fn: () => void;
}

/**
 * A manual clock. Time moves only through advance()/advanceAsync(); due timers fire in order of
 * due time (ties in the order they were scheduled), including timers scheduled by a firing
 * callback when they fall due before the target time.
 */
export class FakeClock implements Clock {
  private current: number;
  private sequence = 0;
  private readonly timers = new Map<number, FakeTimer>();

  constructor(start = 0) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimeout(fn: () => void, ms: number): { clear(): void } {
    const id = ++this.sequence;
    this.timers.set(id, { id, due: this.current + Math.max(0, ms), fn });
    return { clear: () => void this.timers.delete(id) };
  }

  /** Number of timers scheduled and not yet fired or cleared (a stopped component leaves 0). */
  get pendingTimers(): number {
    return this.timers.size;
  }

  /** Due time of the earliest pending timer, or undefined when none is pending. */
  get nextDue(): number | undefined {
    return this.earliest()?.due;
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way, synchronously. */
  advance(ms: number): void {
    const target = this.current + ms;
    for (let timer = this.earliest(); timer !== undefined && timer.due <= target; timer = this.earliest()) {
      this.fire(timer);
    }
    this.current = Math.max(this.current, target);
  }

  /**
   * Like advance(), but lets promise callbacks and I/O callbacks run before time moves on and
   * after each timer fires, so async work started by a timer (a probe) can settle and schedule
   * its follow-up timers at the right fake time.
   */
  async advanceAsync(ms: number): Promise<void> {
    const target = this.current + ms;
    await settle();
    for (let timer = this.earliest(); timer !== undefined && timer.due <= target; timer = this.earliest()) {
      this.fire(timer);
      await settle();
    }
    this.current = Math.max(this.current, target);
    await settle();
  }

  private fire(timer: FakeTimer): void {
    this.timers.delete(timer.id);
    this.current = Math.max(this.current, timer.due);
    timer.fn();
  }

  private earliest(): FakeTimer | undefined {
    let best: FakeTimer | undefined;
    for (const timer of this.timers.values()) {
      if (best === undefined || timer.due < best.due || (timer.due === best.due && timer.id < best.id)) best = timer;
    }
    return best;
  }
}

/** Resolves after pending promise jobs and already-queued callbacks have run. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
