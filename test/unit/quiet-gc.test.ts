// One full collection after a burst of sessions opened or closed, once the burst is over; none
// for a trickle. Time is a FakeClock: the quiet spell is waited out by advancing it.
import t, { type Test } from 'tap';
import { FakeClock } from '../../src/clock';
import { QuietGc } from '../../src/control/quiet-gc';

function quietGc(t: Test) {
  const clock = new FakeClock(0);
  const runs: number[] = [];
  const q = new QuietGc(5_000, (sessions) => runs.push(sessions), clock);
  t.teardown(() => q.stop());
  return { clock, runs, q };
}

t.test('a burst is collected once, after it is over', async (t) => {
  const { clock, runs, q } = quietGc(t);
  for (let i = 0; i < 250; i++) q.sessionOpened();
  clock.advance(4_999);
  t.same(runs, [], 'nothing before the burst has been quiet for quietMs');
  clock.advance(1);
  t.same(runs, [250], 'one collection, counting the burst');
  clock.advance(60_000);
  t.same(runs, [250], 'and no more while quiet');
  t.equal(clock.pendingTimers, 0, 'no timer left');
});

t.test('activity during the burst postpones the collection', async (t) => {
  const { clock, runs, q } = quietGc(t);
  for (let i = 0; i < 200; i++) q.sessionOpened();
  for (let s = 0; s < 4; s++) {
    clock.advance(3_000);
    q.sessionOpened();
  }
  t.same(runs, [], 'never quiet for 5 s so far (12 s into the burst)');
  clock.advance(4_999);
  t.same(runs, []);
  clock.advance(1);
  t.same(runs, [204], 'collected 5 s after the last session');
  t.equal(clock.pendingTimers, 0);
});

t.test('a trickle of sessions is no burst; start-up is one', async (t) => {
  const { clock, runs, q } = quietGc(t);
  for (let i = 0; i < 20; i++) q.sessionOpened();
  t.equal(clock.pendingTimers, 0, 'no timer armed for 20 sessions');
  clock.advance(60_000);
  t.same(runs, [], 'no collection for 20 sessions');
  q.started();
  clock.advance(5_000);
  t.same(runs, [20], 'start-up collects once');
});

t.test('a burst of closed sessions counts like a burst of new ones', async (t) => {
  const { clock, runs, q } = quietGc(t);
  for (let i = 0; i < 150; i++) q.sessionOpened();
  clock.advance(60_000);
  t.same(runs, [], '150 opened is no burst yet');
  for (let i = 0; i < 150; i++) q.sessionClosed();
  clock.advance(5_000);
  t.same(runs, [300], 'closing them makes it one: opened and closed are counted together');
});

t.test('stop() clears the pending collection', async (t) => {
  const { clock, runs, q } = quietGc(t);
  q.started();
  t.equal(clock.pendingTimers, 1);
  q.stop();
  t.equal(clock.pendingTimers, 0);
  clock.advance(60_000);
  t.same(runs, []);
});
