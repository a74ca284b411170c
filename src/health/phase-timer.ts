// Where a check's time went, phase by phase (types.ts, CheckPhase): the probe says when each
// phase starts, and the timer adds up the time until the next one starts or the check ends. A
// phase entered twice (libpq's sslmode=prefer connects again in plain text) counts both times.
// The clock is injected so that the timings can be tested without sleeping.
import type { CheckPhase, PhaseTimings } from './types';

export class PhaseTimer {
  private current: CheckPhase | undefined;
  private since = 0;
  private readonly spent: Partial<Record<CheckPhase, number>> = {};

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Ends the phase running now, if any, and starts `phase`. */
  enter(phase: CheckPhase): void {
    const at = this.now();
    this.stop(at);
    this.current = phase;
    this.since = at;
  }

  /**
   * Ends the phase running now (or at `at`, the instant the check's duration was taken); the
   * milliseconds of every phase that ran (to the µs). Idempotent.
   */
  finish(at: number = this.now()): PhaseTimings {
    this.stop(at);
    const out: Partial<Record<CheckPhase, number>> = {};
    for (const [phase, ms] of Object.entries(this.spent) as [CheckPhase, number][]) out[phase] = Math.round(ms * 1000) / 1000;
    return out;
  }

  private stop(at: number): void {
    if (this.current === undefined) return;
    this.spent[this.current] = (this.spent[this.current] ?? 0) + Math.max(0, at - this.since);
    this.current = undefined;
  }
}
