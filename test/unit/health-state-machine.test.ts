import t from 'tap';
import {
  INITIAL_STATE,
  intervalFor,
  isTransitional,
  next,
  type CheckEvent,
  type HealthState,
} from '../../src/health/state-machine';

const P = { rise: 2, fall: 3 };

/** Runs a sequence ('s' = success, 'f' = failure) and returns the state after each step, compactly. */
function run(events: string, p = P, from: HealthState = INITIAL_STATE): string[] {
  const out: string[] = [];
  let s = from;
  for (const ch of events) {
    const ev: CheckEvent = ch === 's' ? 'success' : 'failure';
    s = next(s, ev, p);
    out.push(`${s.state}${s.successes ? `+${s.successes}` : ''}${s.failures ? `-${s.failures}` : ''}`);
  }
  return out;
}

t.test('init: the first check decides (HAProxy starts a server at health = rise)', async (t) => {
  t.same(run('s'), ['up']);
  t.same(run('f'), ['down']);
});

t.test('rise 2 / fall 3 sequences', async (t) => {
  const table: Array<[string, string[], string]> = [
    ['sfff', ['up', 'up-1', 'up-2', 'down'], 'fall consecutive failures take an up server down'],
    ['sffsff', ['up', 'up-1', 'up-2', 'up', 'up-1', 'up-2'], 'a success resets the failure run'],
    ['fss', ['down', 'down+1', 'up'], 'rise consecutive successes bring a down server up'],
    ['fsfss', ['down', 'down+1', 'down', 'down+1', 'up'], 'a failure resets the success run'],
    ['sfffsfss', ['up', 'up-1', 'up-2', 'down', 'down+1', 'down', 'down+1', 'up'], 'full cycle'],
    ['ffff', ['down', 'down', 'down', 'down'], 'failures while down stay down'],
    ['ssss', ['up', 'up', 'up', 'up'], 'successes while up stay up'],
  ];
  for (const [events, expected, why] of table) t.same(run(events), expected, `${events}: ${why}`);
});

t.test('rise 1 / fall 1 flip on every result', async (t) => {
  t.same(run('sfsf', { rise: 1, fall: 1 }), ['up', 'down', 'up', 'down']);
});

t.test('thresholds below 1 behave as 1', async (t) => {
  t.same(run('sfs', { rise: 0, fall: 0 }), ['up', 'down', 'up']);
});

t.test('next() is pure: it never mutates its input', async (t) => {
  const s: HealthState = Object.freeze({ state: 'up', successes: 0, failures: 1 });
  const after = next(s, 'failure', P);
  t.same(s, { state: 'up', successes: 0, failures: 1 });
  t.same(after, { state: 'up', successes: 0, failures: 2 });
});

t.test('transitional states', async (t) => {
  t.equal(isTransitional(INITIAL_STATE), false, 'init is not "changing", only unknown');
  t.equal(isTransitional({ state: 'up', successes: 0, failures: 0 }), false);
  t.equal(isTransitional({ state: 'up', successes: 0, failures: 1 }), true, 'going down');
  t.equal(isTransitional({ state: 'down', successes: 0, failures: 0 }), false);
  t.equal(isTransitional({ state: 'down', successes: 1, failures: 0 }), true, 'going up');
});

t.test('intervalFor: inter / fastinter / downinter', async (t) => {
  const cfg = { interval: 2000, fastInterval: 500, downInterval: 5000 };
  t.equal(intervalFor(INITIAL_STATE, cfg), 500, 'init is checked quickly');
  t.equal(intervalFor({ state: 'up', successes: 0, failures: 0 }, cfg), 2000, 'up and stable');
  t.equal(intervalFor({ state: 'up', successes: 0, failures: 2 }, cfg), 500, 'going down');
  t.equal(intervalFor({ state: 'down', successes: 1, failures: 0 }, cfg), 500, 'going up');
  t.equal(intervalFor({ state: 'down', successes: 0, failures: 0 }, cfg), 5000, 'down and stable');
});
