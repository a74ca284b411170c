// The checker driven by a FakeClock and a scripted probe. A Probe is just a function returning a
// ProbeResult, so the script stands in for the network, not for PostgreSQL.
import t from 'tap';
import type { BackendConfig, HealthConfig } from '../../src/config/types';
import { HealthChecker, PROBE_SETTLE_GRACE_MS, type CheckerStatus, type TransitionEvent } from '../../src/health/checker';
import { FakeClock } from '../../src/clock';
import { testBackend, testHealth } from '../helpers/health-fixtures';
import type { Probe, ProbeResult } from '../../src/health/types';

const backend: BackendConfig = testBackend('pg1');

const health: HealthConfig = testHealth;

const OK: ProbeResult = { ok: true, role: 'primary', currentLsn: 0x3000060n, durationMs: 1 };
const REFUSED: ProbeResult = { ok: false, layer: 'L4CON', message: 'connect ECONNREFUSED 127.0.0.1:5432', durationMs: 1 };

type Step = ProbeResult | 'hang' | 'throw' | 'reject' | 'garbage';

/** A probe that plays `steps` in order (the last one repeats) and records when it was called. */
function scripted(clock: FakeClock, steps: Step[]) {
  const calls: Array<{ at: number; signal: AbortSignal }> = [];
  const probe: Probe = (signal) => {
    const step = steps[Math.min(calls.length, steps.length - 1)];
    calls.push({ at: clock.now(), signal });
    if (step === 'hang') return new Promise<ProbeResult>(() => {});
    if (step === 'throw') throw new Error('probe bug');
    if (step === 'reject') return Promise.reject(new Error('probe rejected'));
    if (step === 'garbage') return Promise.resolve(undefined as unknown as ProbeResult);
    return Promise.resolve(step);
  };
  return { probe, calls, times: () => calls.map((c) => c.at) };
}

function setup(steps: Step[], overrides: Partial<HealthConfig> = {}, random?: () => number) {
  const clock = new FakeClock(0);
  const script = scripted(clock, steps);
  const checker = new HealthChecker({ backend, health: { ...health, ...overrides }, probe: script.probe, clock, random });
  const results: CheckerStatus[] = [];
  const transitions: Array<Omit<TransitionEvent, 'status'>> = [];
  checker.on('result', (s) => results.push(s));
  checker.on('transition', ({ from, to }) => transitions.push({ from, to }));
  return { clock, checker, results, transitions, ...script };
}

t.test('the first check runs immediately and decides the initial state', async (t) => {
  const { clock, checker, calls, transitions } = setup([OK]);
  t.equal(checker.status.state, 'init');
  checker.start();
  t.equal(calls.length, 1, 'probe called synchronously by start()');
  await clock.advanceAsync(0);
  t.equal(checker.status.state, 'up');
  t.same(transitions, [{ from: 'init', to: 'up' }]);
  t.equal(checker.status.role, 'primary');
  t.equal(checker.status.lastCheckAt, 0);
  checker.start();
  t.equal(calls.length, 1, 'a second start() does nothing');
  checker.stop();
});

t.test('up -> down after `fall` failures spaced by fast_interval, then down_interval', async (t) => {
  const { clock, checker, transitions, results, times } = setup([OK, REFUSED]);
  checker.start();
  await clock.advanceAsync(2000); // t=2000: first failure, going down
  t.match(checker.status, { state: 'up', transitional: true, failures: 1 });
  await clock.advanceAsync(500 + 500); // t=2500, t=3000: fall reached
  t.same(times(), [0, 2000, 2500, 3000], 'interval while stable, fast_interval while going down');
  t.equal(checker.status.state, 'down');
  t.equal(checker.status.transitional, false);
  t.same(transitions, [
    { from: 'init', to: 'up' },
    { from: 'up', to: 'down' },
  ]);
  t.equal(checker.status.lastFailure?.layer, 'L4CON');
  t.equal(checker.status.role, 'primary', 'the last detected role is kept while down');
  t.equal(results.length, 4, "one 'result' per probe");
  await clock.advanceAsync(5000);
  t.same(times(), [0, 2000, 2500, 3000, 8000], 'down and stable: down_interval');
  checker.stop();
});

t.test('down -> up after `rise` successes; a failure in between resets the run', async (t) => {
  const { clock, checker, transitions, times } = setup([REFUSED, OK, REFUSED, OK, OK]);
  checker.start();
  await clock.advanceAsync(0);
  t.equal(checker.status.state, 'down');
  await clock.advanceAsync(5000); // success 1: going up
  t.match(checker.status, { state: 'down', transitional: true, successes: 1 });
  await clock.advanceAsync(500); // failure: run reset, stable down again
  t.match(checker.status, { state: 'down', transitional: false, successes: 0 });
  await clock.advanceAsync(5000 + 500); // two successes
  t.same(times(), [0, 5000, 5500, 10500, 11000]);
  t.equal(checker.status.state, 'up');
  t.same(transitions, [
    { from: 'init', to: 'down' },
    { from: 'down', to: 'up' },
  ]);
  checker.stop();
});

t.test('jitter spreads the interval within ±jitter', async (t) => {
  for (const [r, expected] of [[0, 1600], [0.5, 2000], [0.999999, 2400]] as const) {
    const { clock, checker } = setup([OK], { jitter: 0.2 }, () => r);
    checker.start();
    await clock.advanceAsync(0);
    t.equal(clock.nextDue, expected, `random()=${r}`);
    checker.stop();
  }
  let seed = 42;
  const lcg = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const { clock, checker, times } = setup([OK], { jitter: 0.2 }, lcg);
  checker.start();
  await clock.advanceAsync(200_000);
  const gaps = times().slice(1).map((at, i) => at - times()[i]);
  t.ok(gaps.length > 50);
  t.ok(gaps.every((g) => g >= 1600 && g <= 2400), 'every gap within interval × (1 ± 0.2)');
  t.ok(new Set(gaps).size > 10, 'gaps actually vary');
  checker.stop();
});

t.test('poke() checks now, but never closer than fast_interval to the previous check', async (t) => {
  const { clock, checker, times } = setup([OK, REFUSED]);
  const pokes: string[] = [];
  checker.on('poke', (e) => pokes.push(`${e.reason}:${e.action}`));
  checker.poke('before start');
  t.same(times(), [], 'ignored before start()');
  checker.start();
  checker.poke('during first check');
  await clock.advanceAsync(1000);
  t.same(times(), [0], 'a probe in flight absorbs the poke');
  checker.poke('ECONNREFUSED');
  t.same(times(), [0, 1000], 'checked at once, not at t=2000');
  await clock.advanceAsync(0);
  t.match(checker.status, { state: 'up', transitional: true, failures: 1 });
  await clock.advanceAsync(100);
  checker.poke('ECONNREFUSED again');
  await clock.advanceAsync(400);
  t.same(times(), [0, 1000, 1500], 'second poke: next check at last start + fast_interval');
  t.same(pokes, ['during first check:in-flight', 'ECONNREFUSED:now', 'ECONNREFUSED again:soon']);
  checker.stop();
  checker.poke('after stop');
  t.same(times(), [0, 1000, 1500], 'ignored after stop()');
});

t.test('stop() clears every timer, aborts the probe in flight and ignores its result', async (t) => {
  const idle = setup([OK]);
  idle.checker.start();
  await idle.clock.advanceAsync(0);
  t.equal(idle.clock.pendingTimers, 1, 'the next check is scheduled');
  idle.checker.stop();
  idle.checker.stop();
  t.equal(idle.clock.pendingTimers, 0, 'no timer left; stop() is idempotent');

  const clock = new FakeClock();
  let release: (r: ProbeResult) => void = () => {};
  let seen: AbortSignal | undefined;
  const checker = new HealthChecker({
    backend,
    health,
    clock,
    probe: (signal) => {
      seen = signal;
      return new Promise((resolve) => (release = resolve));
    },
  });
  let results = 0;
  checker.on('result', () => results++);
  checker.start();
  t.equal(clock.pendingTimers, 1, 'deadline armed while the probe runs');
  checker.stop();
  t.equal(seen?.aborted, true, 'probe aborted');
  t.equal(clock.pendingTimers, 0);
  release(OK);
  await clock.advanceAsync(60_000);
  t.equal(results, 0, 'a late result is ignored');
  t.equal(checker.status.state, 'init');
  t.equal(clock.pendingTimers, 0);
});

t.test('a hanging probe is timed out by the checker', async (t) => {
  const { clock, checker, calls, results } = setup(['hang', OK]);
  checker.start();
  await clock.advanceAsync(health.timeout);
  t.equal(results.length, 0, 'the probe gets its own timeout first');
  await clock.advanceAsync(PROBE_SETTLE_GRACE_MS);
  t.equal(results.length, 1);
  t.match(checker.status.lastFailure, { ok: false, layer: 'L7TOUT', message: 'check timed out after 1000 ms' });
  t.equal(calls[0].signal.aborted, true, 'the hung probe was told to give up');
  t.equal(checker.status.state, 'down');
  await clock.advanceAsync(5000);
  t.equal(calls.length, 2, 'checking continues after a timeout');
  t.equal(checker.status.state, 'down');
  t.equal(checker.status.successes, 1);
  checker.stop();
});

t.test('a throwing, rejecting or broken probe counts as a failure', async (t) => {
  for (const step of ['throw', 'reject', 'garbage'] as const) {
    const { clock, checker, results } = setup([OK, step]);
    checker.start();
    await clock.advanceAsync(2000);
    t.equal(results.length, 2, `${step}: still reports a result`);
    t.match(checker.status.lastFailure, { ok: false, layer: 'L7QUERY' }, step);
    t.equal(checker.status.failures, 1, `${step}: counts towards fall`);
    t.equal(clock.pendingTimers, 1, `${step}: next check scheduled`);
    checker.stop();
  }
});

t.test('status is a snapshot', async (t) => {
  const { clock, checker } = setup([OK]);
  checker.start();
  await clock.advanceAsync(0);
  const s = checker.status;
  t.ok(Object.isFrozen(s));
  t.same(s.lastResult, OK);
  t.equal(s.lastFailure, undefined);
  checker.stop();
});
