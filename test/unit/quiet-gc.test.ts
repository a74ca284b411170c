// One full collection after a burst of sessions opened or closed, once the burst is over; none
// for a trickle.
import t from 'tap';
import { QuietGc } from '../../src/control/quiet-gc';

const waitFor = async (cond: () => boolean, ms = 5_000): Promise<void> => {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
};

t.test('a burst is collected once, after it is over', async (t) => {
  const runs: number[] = [];
  const q = new QuietGc(50, (sessions) => runs.push(sessions));
  t.teardown(() => q.stop());
  for (let i = 0; i < 250; i++) q.sessionOpened();
  t.same(runs, [], 'nothing while the burst goes on');
  await waitFor(() => runs.length === 1);
  t.same(runs, [250], 'one collection, counting the burst');
  await new Promise((r) => setTimeout(r, 150));
  t.same(runs, [250], 'and no more while quiet');
});

t.test('a trickle of sessions is no burst; start-up is one', async (t) => {
  const runs: number[] = [];
  const q = new QuietGc(50, (sessions) => runs.push(sessions));
  t.teardown(() => q.stop());
  for (let i = 0; i < 20; i++) q.sessionOpened();
  await new Promise((r) => setTimeout(r, 150));
  t.same(runs, [], 'no collection for 20 sessions');
  q.started();
  await waitFor(() => runs.length === 1);
  t.same(runs, [20], 'start-up collects once');
});

t.test('a burst of closed sessions counts like a burst of new ones', async (t) => {
  const runs: number[] = [];
  const q = new QuietGc(50, (sessions) => runs.push(sessions));
  t.teardown(() => q.stop());
  for (let i = 0; i < 150; i++) q.sessionOpened();
  await new Promise((r) => setTimeout(r, 150));
  t.same(runs, [], '150 opened is no burst yet');
  for (let i = 0; i < 150; i++) q.sessionClosed();
  await waitFor(() => runs.length === 1);
  t.same(runs, [300], 'closing them makes it one: opened and closed are counted together');
});
