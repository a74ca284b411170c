// The status page's history (control/history.ts): a bounded ring of samples taken on a
// FakeClock from fake readings, client bytes per second from ended and open sessions, and
// failover markers from the timeline, kept only within the window.
import t, { type Test } from 'tap';
import { FakeClock } from '../../src/clock';
import { Bus, type RecentEvent } from '../../src/events';
import { History, MARKER_EVENTS, type HistoryReading } from '../../src/control/history';

interface Fake {
  listeners: { name: string; sessions: number; queued: number }[];
  replicas: { name: string; lagBytes?: number; lagSeconds?: number }[];
  openBytes: { in: number; out: number };
}

function history(t: Test, intervalMs = 5_000, windowMs = 60_000) {
  const clock = new FakeClock(1_000_000);
  const bus = new Bus();
  const now: Fake = { listeners: [{ name: 'rw', sessions: 0, queued: 0 }], replicas: [], openBytes: { in: 0, out: 0 } };
  const reads: number[] = [];
  const h = new History({
    bus,
    clock,
    intervalMs,
    windowMs,
    read: (): HistoryReading => {
      reads.push(clock.now());
      return structuredClone(now);
    },
  });
  t.teardown(() => h.stop());
  const event = (event: string, message = event, backend?: string) => {
    const e: RecentEvent = { time: new Date(clock.now()).toISOString(), event, level: 'warn', message, ...(backend && { backend }) };
    bus.emit('timeline', e);
  };
  const ended = (bytesFromClient: number, bytesToClient: number) =>
    bus.emit('session.end', { listener: 'rw', cause: 'client-terminate', durationMs: 1, bytesFromClient, bytesToClient });
  return { clock, bus, now, h, reads, event, ended };
}

t.test('one point per interval, bounded by the window', async (t) => {
  const { clock, now, h } = history(t);
  h.start();
  t.same(h.snapshot().points, [], 'nothing before the first interval');
  now.listeners = [
    { name: 'rw', sessions: 3, queued: 1 },
    { name: 'ro', sessions: 7, queued: 0 },
  ];
  now.replicas = [{ name: 'pg2', lagBytes: 4096, lagSeconds: 1.5 }, { name: 'pg3', lagBytes: 0 }];
  clock.advance(5_000);
  const s = h.snapshot();
  t.match(s, { intervalMs: 5_000, windowMs: 60_000, now: 1_005_000 });
  t.same(s.points, [
    { t: 1_005_000, sessions: { rw: 3, ro: 7 }, queued: { rw: 1, ro: 0 }, bytesPerSecond: { in: 0, out: 0 }, lag: { pg2: { bytes: 4096, seconds: 1.5 }, pg3: { bytes: 0 } } },
  ]);

  for (let i = 0; i < 40; i++) {
    now.listeners = [{ name: 'rw', sessions: i, queued: 0 }];
    now.replicas = [];
    clock.advance(5_000);
  }
  const points = h.snapshot().points;
  t.equal(points.length, 12, '60 s at one point per 5 s: 12 points, never more');
  t.same(points.map((p) => p.sessions.rw), [28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39], 'the newest ones, oldest first');
  t.ok(points.every((p, i) => i === 0 || p.t - points[i - 1].t === 5_000), 'evenly spaced');
  t.same(points[11].lag, {}, 'no replica up: no lag');
  t.equal(clock.pendingTimers, 1, 'one timer, re-armed after each sample');
});

t.test('bytes per second from ended sessions and the open ones', async (t) => {
  const { clock, now, h, ended } = history(t);
  now.openBytes = { in: 1_000, out: 5_000 }; // before start: not traffic of the first interval
  h.start();
  now.openBytes = { in: 11_000, out: 55_000 };
  clock.advance(5_000);
  t.same(h.snapshot().points[0].bytesPerSecond, { in: 2_000, out: 10_000 }, 'open sessions’ growth over 5 s');
  // A session with 6000/30000 bytes ends: its bytes leave the open count and join the ended.
  ended(6_000, 30_000);
  now.openBytes = { in: 5_000, out: 25_000 };
  clock.advance(5_000);
  t.same(h.snapshot().points[1].bytesPerSecond, { in: 0, out: 0 }, 'a session ending is not traffic');
  ended(500, 2_500); // opened and closed between two samples
  clock.advance(5_000);
  t.same(h.snapshot().points[2].bytesPerSecond, { in: 100, out: 500 }, 'a short session between samples counts');
  now.openBytes = { in: 0, out: 0 }; // sockets gone without a report: never a negative rate
  clock.advance(5_000);
  t.same(h.snapshot().points[3].bytesPerSecond, { in: 0, out: 0 });
});

t.test('markers: failover and switchover events of the window only', async (t) => {
  const { clock, h, event } = history(t);
  h.start();
  event('backend.down', 'pg1 down', 'pg1');
  event('primary.lost', 'no primary: pg1 lost', 'pg1');
  clock.advance(10_000);
  event('failover.promoted', 'pg2 promoted', 'pg2');
  event('primary.changed', 'primary pg1 → pg2', 'pg2');
  event('hook.run');
  t.same(
    h.snapshot().markers,
    [
      { t: 1_000_000, event: 'primary.lost', message: 'no primary: pg1 lost', backend: 'pg1' },
      { t: 1_010_000, event: 'failover.promoted', message: 'pg2 promoted', backend: 'pg2' },
      { t: 1_010_000, event: 'primary.changed', message: 'primary pg1 → pg2', backend: 'pg2' },
    ],
    'only the marker events, with the time they happened',
  );
  clock.advance(55_000);
  t.same(h.snapshot().markers.map((m) => m.event), ['failover.promoted', 'primary.changed'], '65 s later the first one is out of the 60 s window');
  event('switchover.done');
  clock.advance(10_000);
  t.same(h.snapshot().markers.map((m) => m.event), ['switchover.done'], 'and then the next ones');
  for (const e of ['primary.changed', 'primary.lost', 'switchover.done', 'failover.promoted', 'backend.fenced']) t.ok(MARKER_EVENTS.has(e), `${e} is a marker`);
});

t.test('markers are bounded even when they all fall in the window', async (t) => {
  const { h, event } = history(t);
  h.start();
  for (let i = 0; i < 1_000; i++) event('primary.changed', `change ${i}`);
  const markers = h.snapshot().markers;
  t.equal(markers.length, 200);
  t.equal(markers[199].message, 'change 999', 'the newest kept');
});

t.test('stop() clears the timer and the bus listeners; start() is idempotent', async (t) => {
  const { clock, bus, h, reads, event } = history(t);
  const stop = h.start();
  h.start();
  t.equal(clock.pendingTimers, 1, 'a second start() arms nothing more');
  t.equal(bus.listenerCount('timeline'), 1);
  clock.advance(5_000);
  stop();
  stop();
  t.equal(clock.pendingTimers, 0, 'no timer after stop');
  t.equal(bus.listenerCount('timeline') + bus.listenerCount('session.end'), 0, 'no bus listener after stop');
  const before = reads.length;
  event('primary.lost');
  clock.advance(60_000);
  t.equal(reads.length, before, 'no more samples');
  t.equal(h.snapshot().points.length, 1, 'what was sampled stays readable');
  t.same(h.snapshot().markers, []);
});
