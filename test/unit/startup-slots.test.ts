// proxy.max_concurrent_startups in the router: a backend with every startup slot taken is no
// pick; the sessions wait in the listener's queue, in order, and go one per released slot.
import t from 'tap';
import { Topology, type CheckerSnapshot } from '../../src/routing/topology';
import { Router } from '../../src/routing/router';
import { StartupSlots } from '../../src/routing/startup-slots';
import { FakeClock } from '../../src/clock';
import type { BackendConfig, FailoverConfig, ListenerConfig } from '../../src/config/types';

const backend = (name: string): BackendConfig => ({ name, host: '127.0.0.1', port: 1, weight: 100, backup: false });
const rw: ListenerConfig = { name: 'rw', host: '127.0.0.1', port: 0, route: 'primary', balance: 'roundrobin', fallback: 'none', maxConnections: 0 };
const ro: ListenerConfig = { ...rw, name: 'ro', route: 'replica' };
const primaryUp: CheckerSnapshot = { state: 'up', transitional: false, lastResult: { ok: true, role: 'primary', currentLsn: 1n, durationMs: 1 } };
const replicaUp: CheckerSnapshot = { state: 'up', transitional: false, lastResult: { ok: true, role: 'replica', replayLsn: 1n, receiveLsn: 1n, durationMs: 1 } };
const failover = { queueTimeout: 10_000, queueSize: 10 } as FailoverConfig;
const never = () => new AbortController().signal;
const none = () => new Set<string>();

function setup(limit: number) {
  const clock = new FakeClock(0);
  const topo = new Topology([backend('pg1'), backend('pg2'), backend('pg3')], { maxReplicaLag: {} });
  let max = limit;
  const slots = new StartupSlots(() => max);
  const outcomes: string[] = [];
  const router = new Router(rw, topo, failover, undefined, (_ms, o) => outcomes.push(o), clock, slots);
  return { clock, topo, slots, router, outcomes, setLimit: (n: number) => ((max = n), slots.roomMade()) };
}

t.test('the slots count, free and remember their peak', async (t) => {
  const slots = new StartupSlots(() => 2);
  t.ok(slots.hasRoom('pg1'));
  slots.take('pg1');
  slots.take('pg1');
  t.notOk(slots.hasRoom('pg1'));
  t.ok(slots.hasRoom('pg2'), 'per server');
  t.equal(slots.count('pg1'), 2);
  slots.release('pg1');
  t.equal(slots.count('pg1'), 1);
  t.equal(slots.peak('pg1'), 2);
  t.ok(new StartupSlots(() => 0).hasRoom('pg1'), '0: no limit');
});

t.test('a server at the limit: sessions wait in order and go one per released slot', async (t) => {
  const { topo, slots, router, outcomes } = setup(2);
  t.teardown(() => router.close());
  topo.update('pg1', primaryUp);
  const a = await router.acquire(none, 10_000, never);
  const b = await router.acquire(none, 10_000, never);
  t.same([a.name, b.name], ['pg1', 'pg1']);
  t.equal(slots.count('pg1'), 2);
  const served: number[] = [];
  const waiting = [1, 2, 3].map((i) => router.acquire(none, 10_000, never).then(() => served.push(i)));
  t.equal(router.queued, 3, 'the third session onwards waits');
  slots.release('pg1');
  await Promise.resolve();
  t.equal(router.queued, 2, 'one release, one session served');
  t.equal(slots.count('pg1'), 2, 'and its slot taken');
  slots.release('pg1');
  slots.release('pg1');
  await Promise.all(waiting);
  t.same(served, [1, 2, 3], 'first come, first served');
  t.equal(slots.peak('pg1'), 2, 'never more than the limit');
  t.same(outcomes, ['served', 'served', 'served']);
});

t.test('a waiter for slots times out with a reason that names the limit', async (t) => {
  const { clock, topo, router } = setup(1);
  t.teardown(() => router.close());
  topo.update('pg1', primaryUp);
  await router.acquire(none, 10_000, never);
  const waiting = router.acquire(none, clock.now() + 10_000, never);
  waiting.catch(() => undefined);
  await clock.advanceAsync(10_000);
  await t.rejects(waiting, { code: 'PGW_QUEUE_TIMEOUT', message: /max_concurrent_startups \(1\) startups in flight: pg1 1 in flight/ });
});

t.test('waiting for a slot is not refused by queue_size; waiting for a server still is', async (t) => {
  const { topo, slots } = setup(1);
  const router = new Router(rw, topo, { queueTimeout: 10_000, queueSize: 1 } as FailoverConfig, undefined, undefined, new FakeClock(0), slots);
  t.teardown(() => router.close());
  topo.update('pg1', primaryUp);
  await router.acquire(none, 10_000, never);
  const waiting = [1, 2, 3].map(() => router.acquire(none, 10_000, never));
  t.equal(router.queued, 3, 'three wait for the one slot behind a queue_size of 1');
  topo.update('pg1', { state: 'down', transitional: false, lastResult: { ok: false, layer: 'L4CON', message: 'refused', durationMs: 1 } });
  await t.rejects(router.acquire(none, 10_000, never), { code: 'PGW_QUEUE_FULL' }, 'no server at all: queue_size applies');
  topo.update('pg1', primaryUp);
  for (let i = 0; i < 4; i++) slots.release('pg1');
  t.equal((await Promise.all(waiting)).length, 3);
});

t.test('a raised limit (reload) lets waiters go at once', async (t) => {
  const { topo, router, setLimit } = setup(1);
  t.teardown(() => router.close());
  topo.update('pg1', primaryUp);
  await router.acquire(none, 10_000, never);
  const waiting = router.acquire(none, 10_000, never);
  t.equal(router.queued, 1);
  setLimit(2);
  t.equal((await waiting).name, 'pg1');
});

t.test('a replica route takes the replica that has a slot free', async (t) => {
  const { topo, slots } = setup(1);
  const router = new Router(ro, topo, failover, undefined, undefined, new FakeClock(0), slots);
  t.teardown(() => router.close());
  topo.update('pg1', primaryUp);
  topo.update('pg2', replicaUp);
  topo.update('pg3', replicaUp);
  const first = await router.acquire(none, 10_000, never);
  const second = await router.acquire(none, 10_000, never);
  t.not(first.name, second.name, 'the busy replica is skipped, not waited for');
  t.equal(router.queued, 0);
});
