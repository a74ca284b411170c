// Failures for lack of file descriptors come by the thousand during a shortage: one line when it
// starts, one when it is over (with the count), nothing per failure.
import t from 'tap';
import { DescriptorShortage } from '../../src/control/descriptor-shortage';
import { FakeClock } from '../../src/clock';
import { createLogger } from '../../src/logger';

function setup() {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger('info', { write: (s: string) => void lines.push(JSON.parse(s)) });
  const clock = new FakeClock(0);
  return { lines, clock, shortage: new DescriptorShortage(log, clock, 5_000) };
}

t.test('a burst is logged once when it starts and once when it is over', async (t) => {
  const { lines, clock, shortage } = setup();
  shortage.hit('connect to pg1', 'EMFILE');
  for (let i = 0; i < 100; i++) {
    await clock.advanceAsync(100);
    shortage.hit('accept on listener rw', 'EMFILE');
  }
  t.same(lines.map((l) => l.event), ['proxy.out_of_descriptors'], 'one line for 101 failures');
  t.match(lines[0], { level: 'error', where: 'connect to pg1', code: 'EMFILE', msg: /out of file descriptors \(EMFILE\) at connect to pg1/ });
  await clock.advanceAsync(4_999);
  t.equal(lines.length, 1, 'not over while failures came less than 5 s ago');
  await clock.advanceAsync(1);
  t.match(lines[1], { level: 'warn', event: 'proxy.descriptors_back', failures: 101, durationMs: 10_000 });
  shortage.hit('check of pg1', undefined);
  t.equal(lines.length, 3, 'the next burst is a new line');
  t.match(lines[2], { event: 'proxy.out_of_descriptors', msg: /out of file descriptors at check of pg1/ });
  shortage.close();
  t.equal(clock.pendingTimers, 0, 'close leaves no timer');
});
