// HAProxy rise/fall hysteresis as an explicit state set and one pure transition function.
//
// HAProxy keeps one `health` counter in 0..rise+fall-1 (check.c); here the same behaviour is
// spelled out as a stable state plus the run of consecutive results that argue against it:
//   init  --success--> up            (HAProxy starts a server at health = rise: the first
//   init  --failure--> down           check decides, nothing to wait for)
//   up    --failure x fall--> down   (a success in between resets the failure run)
//   down  --success x rise--> up     (a failure in between resets the success run)
//   any   --no-verdict--> the same  (a server that is full, or pgwarden out of descriptors)
// An 'up' with failures > 0 is "going down", a 'down' with successes > 0 is "going up":
// both are transitional and get checked at fast_interval.
// Pure: no I/O, no timers, no logger.

export type StableState = 'init' | 'up' | 'down';
/** 'no-verdict': a result that says nothing about the server (types.ts, NO_VERDICT_LAYERS). */
export type CheckEvent = 'success' | 'failure' | 'no-verdict';

export interface HealthState {
  readonly state: StableState;
  /** Consecutive successes while 'down' (counting towards rise); 0 otherwise. */
  readonly successes: number;
  /** Consecutive failures while 'up' (counting towards fall); 0 otherwise. */
  readonly failures: number;
}

export interface Thresholds {
  readonly rise: number;
  readonly fall: number;
}

export interface IntervalConfig {
  readonly interval: number;
  readonly fastInterval: number;
  readonly downInterval: number;
}

export const INITIAL_STATE: HealthState = Object.freeze({ state: 'init', successes: 0, failures: 0 });

const UP: HealthState = Object.freeze({ state: 'up', successes: 0, failures: 0 });
const DOWN: HealthState = Object.freeze({ state: 'down', successes: 0, failures: 0 });

/** The state after one check result. Thresholds below 1 behave as 1. */
export function next(s: HealthState, ev: CheckEvent, p: Thresholds): HealthState {
  const rise = Math.max(1, p.rise);
  const fall = Math.max(1, p.fall);
  if (ev === 'no-verdict') return s;
  switch (s.state) {
    case 'init':
      return ev === 'success' ? UP : DOWN;
    case 'up': {
      if (ev === 'success') return UP;
      const failures = s.failures + 1;
      return failures >= fall ? DOWN : { state: 'up', successes: 0, failures };
    }
    case 'down': {
      if (ev === 'failure') return DOWN;
      const successes = s.successes + 1;
      return successes >= rise ? UP : { state: 'down', successes, failures: 0 };
    }
  }
}

/** True while the state is changing: 'up' and "going down", or 'down' and "going up". */
export function isTransitional(s: HealthState): boolean {
  return (s.state === 'up' && s.failures > 0) || (s.state === 'down' && s.successes > 0);
}

/** HAProxy `inter` / `fastinter` / `downinter`: how long to wait before the next check. */
export function intervalFor(s: HealthState, cfg: IntervalConfig): number {
  // 'init' is unknown rather than changing, but an unknown server deserves a quick answer too.
  if (s.state === 'init' || isTransitional(s)) return cfg.fastInterval;
  return s.state === 'up' ? cfg.interval : cfg.downInterval;
}
