// One active health checker per backend, HAProxy semantics: a probe every `interval` while the
// server is stably up, every `fast_interval` while its state is changing, every `down_interval`
// while it is stably down; `rise`/`fall` hysteresis from state-machine.ts; jitter so the checks
// of many backends (and many pgwarden instances) do not align.
//
// During a failover (watch(), driven by control/role-watch.ts) a healthy replica is also role
// polled every watch interval between its checks: a poll that sees the server out of recovery
// (or fails) runs a full check at once, so a promotion is seen within one poll.
//
// Invariants: at most one probe or poll in flight; the next check is scheduled only after the
// probe settled; every timer is kept and cleared by stop(); nothing here throws into the caller.
import { EventEmitter } from 'node:events';
import type { BackendConfig, HealthConfig } from '../config/types';
import { realClock, type Clock } from '../clock';
import { INITIAL_STATE, intervalFor, isTransitional, next, type HealthState, type StableState } from './state-machine';
import { verdictOf, type DetectedRole, type Probe, type ProbeFailure, type ProbeResult } from './types';

/**
 * Extra time the checker allows beyond `timeout` before it declares a probe hung. Probes enforce
 * `timeout` themselves and know better whether they timed out before or after connecting
 * (L4TOUT vs L7TOUT); the checker's own deadline is the backstop for a probe that never settles.
 */
export const PROBE_SETTLE_GRACE_MS = 100;

export interface CheckerStatus {
  readonly state: StableState;
  /** 'up' with failures counting towards `fall`, or 'down' with successes counting towards `rise`. */
  readonly transitional: boolean;
  readonly successes: number;
  readonly failures: number;
  readonly lastResult?: ProbeResult;
  /** Clock time at which the last probe settled. */
  readonly lastCheckAt?: number;
  readonly lastFailure?: ProbeFailure;
  /** Role reported by the last successful probe. */
  readonly role?: DetectedRole;
}

export interface TransitionEvent {
  readonly from: StableState;
  readonly to: StableState;
  readonly status: CheckerStatus;
}

export interface PokeEvent {
  readonly reason: string;
  /** 'now': a check started; 'soon': brought forward to fast_interval after the last one; 'in-flight': one is running. */
  readonly action: 'now' | 'soon' | 'in-flight';
}

/** One role poll during a failover watch (not a check: it never moves rise/fall). */
export interface PollEvent {
  readonly result: ProbeResult;
  /** The poll saw a change (out of recovery) or failed: a full check runs now. */
  readonly checkNow: boolean;
}

export interface HealthCheckerOptions {
  readonly backend: BackendConfig;
  readonly health: HealthConfig;
  readonly probe: Probe;
  readonly clock?: Clock;
  /** Uniform in [0, 1); injectable so jitter is testable. */
  readonly random?: () => number;
}

interface InFlight {
  readonly kind: 'check' | 'poll';
  readonly controller: AbortController;
  readonly deadline: { clear(): void };
}

export interface HealthChecker {
  on(event: 'result', listener: (status: CheckerStatus) => void): this;
  on(event: 'transition', listener: (event: TransitionEvent) => void): this;
  on(event: 'poke', listener: (event: PokeEvent) => void): this;
  on(event: 'poll', listener: (event: PollEvent) => void): this;
  once(event: 'result', listener: (status: CheckerStatus) => void): this;
  once(event: 'transition', listener: (event: TransitionEvent) => void): this;
  once(event: 'poke', listener: (event: PokeEvent) => void): this;
}

export class HealthChecker extends EventEmitter {
  readonly backend: BackendConfig;
  private readonly health: HealthConfig;
  private readonly probe: Probe;
  private readonly clock: Clock;
  private readonly random: () => number;

  private machine: HealthState = INITIAL_STATE;
  private lastResult?: ProbeResult;
  private lastCheckAt?: number;
  private lastFailure?: ProbeFailure;
  private role?: DetectedRole;

  private lifecycle: 'new' | 'running' | 'stopped' = 'new';
  private inFlight?: InFlight;
  private lastStartAt?: number;
  private scheduled?: { readonly timer: { clear(): void }; readonly at: number };
  /** When the next check is due (the timer may wake earlier, for a poll). */
  private checkAt?: number;
  /** Role poll interval while watched (a failover in progress); undefined: no polls. */
  private watchMs?: number;
  /** A poke that arrived while a poll was in flight: applied when the poll settles. */
  private pendingPoke?: string;

  constructor(opts: HealthCheckerOptions) {
    super();
    this.backend = opts.backend;
    this.health = opts.health;
    this.probe = opts.probe;
    this.clock = opts.clock ?? realClock;
    this.random = opts.random ?? Math.random;
  }

  get status(): CheckerStatus {
    return Object.freeze({
      state: this.machine.state,
      transitional: isTransitional(this.machine),
      successes: this.machine.successes,
      failures: this.machine.failures,
      ...(this.lastResult !== undefined && { lastResult: this.lastResult }),
      ...(this.lastCheckAt !== undefined && { lastCheckAt: this.lastCheckAt }),
      ...(this.lastFailure !== undefined && { lastFailure: this.lastFailure }),
      ...(this.role !== undefined && { role: this.role }),
    });
  }

  /**
   * Role polls every `intervalMs` between checks while this server is a healthy replica
   * (undefined or 0: stop polling). The first poll runs now: the promotion may already be done.
   */
  watch(intervalMs: number | undefined): void {
    const ms = intervalMs !== undefined && intervalMs > 0 ? intervalMs : undefined;
    if (ms === this.watchMs) return;
    const started = this.watchMs === undefined;
    this.watchMs = ms;
    if (this.lifecycle !== 'running' || this.inFlight !== undefined || this.checkAt === undefined) return;
    if (started && this.pollable()) this.runPoll();
    else this.scheduleAt(this.checkAt);
  }

  /** Starts checking; the first check runs immediately. A second call does nothing. */
  start(): void {
    if (this.lifecycle !== 'new') return;
    this.lifecycle = 'running';
    this.runCheck();
  }

  /** Clears every timer and aborts the probe in flight; its late result is ignored. Idempotent and final. */
  stop(): void {
    if (this.lifecycle === 'stopped') return;
    this.lifecycle = 'stopped';
    this.clearScheduled();
    const inFlight = this.inFlight;
    this.inFlight = undefined;
    if (inFlight !== undefined) {
      inFlight.deadline.clear();
      inFlight.controller.abort();
    }
    this.probe.close?.();
  }

  /**
   * Passive signal from a session (connect refused, reset, timeout): check now instead of waiting
   * out `interval`. Checks stay at least `fast_interval` apart, so a burst of failing sessions is
   * one check, and `fall` still means `fall` checks (HAProxy fastinter), not `fall` sessions.
   */
  poke(reason: string): void {
    if (this.lifecycle !== 'running') return;
    if (this.inFlight?.kind === 'poll') {
      this.pendingPoke = reason;
      return;
    }
    if (this.inFlight !== undefined) return this.emitSafely('poke', { reason, action: 'in-flight' });
    const now = this.clock.now();
    const earliest = this.lastStartAt === undefined ? now : this.lastStartAt + this.health.fastInterval;
    if (earliest <= now) {
      this.emitSafely('poke', { reason, action: 'now' });
      this.runCheck();
      return;
    }
    if (this.checkAt === undefined || this.checkAt > earliest) this.scheduleAt(earliest);
    this.emitSafely('poke', { reason, action: 'soon' });
  }

  private controller = new AbortController();

  private runCheck(): void {
    if (this.lifecycle !== 'running' || this.inFlight !== undefined) return;
    this.clearScheduled();
    this.checkAt = undefined;
    const startedAt = this.clock.now();
    this.lastStartAt = startedAt;
    // One controller for every check until a check is aborted (a timeout): probes remove their
    // 'abort' listener when they settle, and a new AbortSignal per check is measurable CPU at
    // a 250 ms interval.
    if (this.controller.signal.aborted) this.controller = new AbortController();
    const controller = this.controller;
    const deadlineMs = this.health.timeout + PROBE_SETTLE_GRACE_MS;
    const deadline = this.clock.setTimeout(() => {
      controller.abort();
      this.settle(inFlight, {
        ok: false,
        layer: 'L7TOUT',
        message: `check timed out after ${this.health.timeout} ms`,
        durationMs: this.clock.now() - startedAt,
      });
    }, deadlineMs);
    const inFlight: InFlight = { kind: 'check', controller, deadline };
    this.inFlight = inFlight;

    let attempt: Promise<ProbeResult>;
    try {
      attempt = Promise.resolve(this.probe(controller.signal));
    } catch (err) {
      attempt = Promise.reject(err);
    }
    attempt.then(
      (result) => this.settle(inFlight, validated(result, this.clock.now() - startedAt)),
      (err: unknown) =>
        this.settle(inFlight, {
          ok: false,
          layer: 'L7QUERY',
          message: `probe threw: ${describeError(err)}`,
          durationMs: this.clock.now() - startedAt,
        }),
    );
  }

  /** Only a healthy replica is polled: a server that is down comes back through `rise` checks. */
  private pollable(): boolean {
    return this.watchMs !== undefined && this.probe.poll !== undefined && this.machine.state === 'up' && this.machine.failures === 0 && this.role === 'replica';
  }

  private runPoll(): void {
    const poll = this.probe.poll;
    if (this.lifecycle !== 'running' || this.inFlight !== undefined || poll === undefined) return;
    this.clearScheduled();
    const startedAt = this.clock.now();
    if (this.controller.signal.aborted) this.controller = new AbortController();
    const controller = this.controller;
    const fail = (message: string): ProbeResult => ({ ok: false, layer: 'L7TOUT', message, durationMs: this.clock.now() - startedAt });
    const deadline = this.clock.setTimeout(() => {
      controller.abort();
      this.settlePoll(inFlight, fail(`role poll timed out after ${this.health.timeout} ms`));
    }, this.health.timeout + PROBE_SETTLE_GRACE_MS);
    const inFlight: InFlight = { kind: 'poll', controller, deadline };
    this.inFlight = inFlight;
    let attempt: Promise<ProbeResult>;
    try {
      attempt = Promise.resolve(poll(controller.signal));
    } catch (err) {
      attempt = Promise.reject(err);
    }
    attempt.then(
      (result) => this.settlePoll(inFlight, validated(result, this.clock.now() - startedAt)),
      (err: unknown) => this.settlePoll(inFlight, fail(`role poll threw: ${describeError(err)}`)),
    );
  }

  /** A poll that saw the role change, or failed, is followed by a check now; else the next poll. */
  private settlePoll(attempt: InFlight, result: ProbeResult): void {
    if (this.inFlight !== attempt) return;
    this.inFlight = undefined;
    attempt.deadline.clear();
    const checkNow = !result.ok || result.role !== this.role;
    const poked = this.pendingPoke;
    this.pendingPoke = undefined;
    if (checkNow) this.runCheck();
    else this.scheduleAt(this.checkAt ?? this.clock.now());
    this.emitSafely('poll', { result, checkNow } satisfies PollEvent);
    if (poked !== undefined && !checkNow) this.poke(poked); // still at most one check per fast_interval
  }

  /** Applies one probe outcome, once: the deadline and the probe race, and stop() may have won. */
  private settle(attempt: InFlight, result: ProbeResult): void {
    if (this.inFlight !== attempt) return;
    this.inFlight = undefined;
    attempt.deadline.clear();

    const from = this.machine.state;
    this.machine = next(this.machine, verdictOf(result), this.health);
    this.lastResult = result;
    this.lastCheckAt = this.clock.now();
    if (result.ok) this.role = result.role;
    else this.lastFailure = result;

    // Schedule before telling anyone, so a throwing listener cannot stop the checks.
    this.scheduleAt(this.clock.now() + this.nextDelay());
    const status = this.status;
    this.emitSafely('result', status);
    if (from !== this.machine.state) this.emitSafely('transition', { from, to: this.machine.state, status });
  }

  /** intervalFor(state) spread uniformly over ±jitter, so checks of many servers drift apart. */
  private nextDelay(): number {
    const base = intervalFor(this.machine, this.health);
    const jitter = Math.min(1, Math.max(0, this.health.jitter));
    return Math.max(0, Math.round(base * (1 + jitter * (2 * this.random() - 1))));
  }

  /** The next check at `at`; while watched, a poll every watch interval before it. */
  private scheduleAt(at: number): void {
    this.clearScheduled();
    this.checkAt = at;
    const pollAt = this.pollable() ? this.clock.now() + this.watchMs! : Infinity;
    const wakeAt = Math.min(at, pollAt);
    const timer = this.clock.setTimeout(() => {
      this.scheduled = undefined;
      if (wakeAt < at && this.pollable()) this.runPoll();
      else this.runCheck();
    }, wakeAt - this.clock.now());
    this.scheduled = { timer, at: wakeAt };
  }

  private clearScheduled(): void {
    this.scheduled?.timer.clear();
    this.scheduled = undefined;
  }

  /**
   * Listeners run synchronously inside a promise callback; a listener's exception would become an
   * unhandled rejection with no trace of where it came from. Re-throw it on its own tick instead,
   * as a bug in the listener (the same outcome as a throwing listener on any timer-driven emitter).
   */
  private emitSafely(event: 'result' | 'transition' | 'poke' | 'poll', payload: unknown): void {
    try {
      this.emit(event, payload);
    } catch (err) {
      process.nextTick(() => {
        throw err;
      });
    }
  }
}

/** A probe that resolves to something that is not a ProbeResult is a broken probe: a failure. */
function validated(result: unknown, durationMs: number): ProbeResult {
  if (result !== null && typeof result === 'object' && typeof (result as { ok?: unknown }).ok === 'boolean') {
    return result as ProbeResult;
  }
  return { ok: false, layer: 'L7QUERY', message: 'probe returned no result', durationMs };
}

function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
