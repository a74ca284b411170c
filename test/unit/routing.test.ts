import t from 'tap';
import { Topology, type CheckerSnapshot } from '../../src/routing/topology';
import { candidatesFor } from '../../src/routing/candidates';
import { Router } from '../../src/routing/router';
import { FakeClock } from '../../src/clock';
import type { BackendConfig, FailoverConfig, ListenerConfig } from '../../src/config/types';

const backend = (name: string, extra: Partial<BackendConfig> = {}): BackendConfig => ({ name, host: '127.0.0.1', port: 1, weight: 100, backup: false, ...extra });
const listener = (route: ListenerConfig['route'], extra: Partial<ListenerConfig> = {}): ListenerConfig => ({
  name: route === 'primary' ? 'rw' : 'ro', host: '127.0.0.1', port: 0, route, balance: 'roundrobin', fallback: 'none', maxConnections: 0, ...extra,
});

const primaryUp = (lsn = 1000n): CheckerSnapshot => ({ state: 'up', transitional: false, lastResult: { ok: true, role: 'primary', currentLsn: lsn, durationMs: 1 } });
const replicaUp = (replay = 1000n, lagSeconds = 0): CheckerSnapshot => ({
  state: 'up', transitional: false, lastResult: { ok: true, role: 'replica', replayLsn: replay, receiveLsn: replay, replayLagSeconds: lagSeconds, durationMs: 1 },
});
const down = (layer: 'L4CON' | 'L7AUTH' = 'L4CON'): CheckerSnapshot => ({
  state: 'down', transitional: false, lastFailure: { ok: false, layer, message: 'connect ECONNREFUSED', durationMs: 1 }, lastResult: { ok: false, layer, message: 'connect ECONNREFUSED', durationMs: 1 },
});

function cluster(extra: Partial<BackendConfig>[] = [], lag: { bytes?: number; ms?: number } = {}) {
  const topo = new Topology([backend('pg1', extra[0]), backend('pg2', extra[1]), backend('pg3', extra[2])], { maxReplicaLag: lag });
  return topo;
}
const names = (vs: { name: string }[]) => vs.map((v) => v.name).sort();

t.test('primary route: the one up backend not in recovery', async (t) => {
  const topo = cluster();
  topo.update('pg1', primaryUp());
  topo.update('pg2', replicaUp());
  topo.update('pg3', replicaUp());
  t.same(names(candidatesFor(listener('primary'), topo).backends), ['pg1']);
  t.same(names(candidatesFor(listener('replica'), topo).backends), ['pg2', 'pg3']);
  t.same(names(candidatesFor(listener('any'), topo).backends), ['pg1', 'pg2', 'pg3']);
});

t.test('no primary: a reason a person understands', async (t) => {
  const topo = cluster();
  topo.update('pg1', down());
  topo.update('pg2', replicaUp());
  const set = candidatesFor(listener('primary'), topo);
  t.same(set.backends, []);
  t.equal(set.reason, 'no primary available for listener rw: pg1 down (L4 connection refused or reset), pg2 in recovery, pg3 not checked yet');
});

t.test('replica route falls back to the primary only when asked', async (t) => {
  const topo = cluster();
  topo.update('pg1', primaryUp());
  topo.update('pg2', down());
  topo.update('pg3', down());
  t.same(candidatesFor(listener('replica'), topo).backends, []);
  const fb = candidatesFor(listener('replica', { fallback: 'primary' }), topo);
  t.same(names(fb.backends), ['pg1']);
  t.equal(fb.fellBack, true);
  t.match(candidatesFor(listener('replica'), topo).reason, /no replica available for listener ro: pg1 is the primary, pg2 down/);
});

t.test('backup servers only when no other candidate is up', async (t) => {
  const topo = cluster([{}, {}, { backup: true }]);
  topo.update('pg1', primaryUp());
  topo.update('pg2', replicaUp());
  topo.update('pg3', replicaUp());
  t.same(names(candidatesFor(listener('replica'), topo).backends), ['pg2']);
  topo.update('pg2', down());
  t.same(names(candidatesFor(listener('replica'), topo).backends), ['pg3']);
});

t.test('replicas beyond max_replica_lag take no new sessions', async (t) => {
  const topo = cluster([], { bytes: 100 });
  topo.update('pg1', primaryUp(10_000n));
  topo.update('pg2', replicaUp(9_950n));
  topo.update('pg3', replicaUp(5_000n));
  t.equal(topo.get('pg3')!.lagBytes, 5000);
  t.same(names(candidatesFor(listener('replica'), topo).backends), ['pg2']);
  const secTopo = cluster([], { ms: 5000 });
  secTopo.update('pg1', primaryUp());
  secTopo.update('pg2', replicaUp(1000n, 10));
  secTopo.update('pg3', replicaUp(1000n, 1));
  t.same(names(candidatesFor(listener('replica'), secTopo).backends), ['pg3']);
  t.match(candidatesFor(listener('replica'), cluster([], { ms: 1 })).reason ?? '', /not checked yet/);
});

t.test('weight 0 takes no new sessions', async (t) => {
  const topo = cluster([{}, { weight: 0 }]);
  topo.update('pg1', primaryUp());
  topo.update('pg2', replicaUp());
  topo.update('pg3', replicaUp());
  t.same(names(candidatesFor(listener('replica'), topo).backends), ['pg3']);
});

t.test('two primaries: writes are held (split brain), and events say so', async (t) => {
  const topo = cluster();
  const primaries: unknown[] = [];
  topo.on('primary', (p) => primaries.push(p));
  topo.update('pg1', primaryUp());
  topo.update('pg2', primaryUp());
  t.same(candidatesFor(listener('primary'), topo).backends, []);
  t.same(topo.splitBrainMembers(), ['pg1', 'pg2']);
  t.match(candidatesFor(listener('primary'), topo).reason, /split brain: pg1 and pg2/);
  topo.update('pg2', replicaUp());
  t.same(names(candidatesFor(listener('primary'), topo).backends), ['pg1']);
  t.same(primaries, [{ from: undefined, to: 'pg1' }, { from: 'pg1', to: undefined }, { from: undefined, to: 'pg1' }]);
});

t.test('state events on flips only', async (t) => {
  const topo = cluster();
  const events: unknown[] = [];
  topo.on('state', (e) => events.push(e));
  topo.update('pg1', primaryUp());
  topo.update('pg1', primaryUp());
  topo.update('pg1', down());
  t.equal(events.length, 2);
  t.match(events[1], { backend: 'pg1', from: 'up', to: 'down', reason: /L4 connection refused/ });
});

t.test('router: waiters are woken by a topology change, FIFO', async (t) => {
  const topo = cluster();
  const router = new Router(listener('primary'), topo, { queueTimeout: 60_000, queueSize: 10 } as FailoverConfig);
  t.teardown(() => router.close());
  const ac = new AbortController();
  const first = router.acquire(() => new Set(), Date.now() + 60_000, ac.signal);
  const second = router.acquire(() => new Set(), Date.now() + 60_000, ac.signal);
  t.equal(router.queued, 2);
  topo.update('pg2', primaryUp());
  t.equal((await first).name, 'pg2');
  t.equal((await second).name, 'pg2');
  t.equal(router.queued, 0);
});

t.test('router: queue timeout gives 57P03 with the reason, on its clock', async (t) => {
  const clock = new FakeClock(1_000_000);
  const topo = cluster();
  topo.update('pg1', down());
  const dequeued: [number, string][] = [];
  const router = new Router(listener('primary'), topo, { queueTimeout: 10_000, queueSize: 10 } as FailoverConfig, undefined, (ms, outcome) => dequeued.push([ms, outcome]), clock);
  t.teardown(() => router.close());
  let settled = false;
  const waiting = router.acquire(() => new Set(), clock.now() + 10_000, new AbortController().signal);
  waiting.catch(() => undefined).finally(() => (settled = true));
  await clock.advanceAsync(9_999);
  t.equal(settled, false, 'still waiting 1 ms before the deadline');
  t.equal(router.queued, 1);
  await clock.advanceAsync(1);
  await t.rejects(waiting, {
    code: 'PGW_QUEUE_TIMEOUT', sqlstate: '57P03', message: /no primary available for listener rw: pg1 down .*\(waited 10 s, queue_timeout\)/,
  });
  t.equal(router.queued, 0);
  t.same(dequeued, [[10_000, 'timeout']], 'reported once, with the wait on the clock');
  t.equal(clock.pendingTimers, 0, 'no timer left behind');
});

t.test('router: a waiter served before its deadline leaves no timer behind', async (t) => {
  const clock = new FakeClock(0);
  const topo = cluster();
  const dequeued: [number, string][] = [];
  const router = new Router(listener('primary'), topo, { queueTimeout: 10_000, queueSize: 10 } as FailoverConfig, undefined, (ms, outcome) => dequeued.push([ms, outcome]), clock);
  t.teardown(() => router.close());
  const waiting = router.acquire(() => new Set(), clock.now() + 10_000, new AbortController().signal);
  await clock.advanceAsync(2_500);
  topo.update('pg1', primaryUp());
  t.equal((await waiting).name, 'pg1');
  t.same(dequeued, [[2_500, 'served']]);
  t.equal(clock.pendingTimers, 0);
  await clock.advanceAsync(60_000);
  t.same(dequeued, [[2_500, 'served']], 'the deadline passing later changes nothing');
});

t.test('router: close rejects every waiter and clears their timers', async (t) => {
  const clock = new FakeClock(0);
  const topo = cluster();
  const router = new Router(listener('primary'), topo, { queueTimeout: 10_000, queueSize: 10 } as FailoverConfig, undefined, undefined, clock);
  const a = router.acquire(() => new Set(), 10_000, new AbortController().signal);
  const b = router.acquire(() => new Set(), 10_000, new AbortController().signal);
  router.close();
  await t.rejects(a, { code: 'PGW_SHUTTING_DOWN', sqlstate: '57P01' });
  await t.rejects(b, { code: 'PGW_SHUTTING_DOWN' });
  t.equal(clock.pendingTimers, 0);
  await t.rejects(router.acquire(() => new Set(), 10_000, new AbortController().signal), { code: 'PGW_SHUTTING_DOWN' }, 'and refuses new ones');
});

t.test('router: a full queue answers 53300 at once; abort leaves the queue', async (t) => {
  const topo = cluster();
  const router = new Router(listener('primary'), topo, { queueTimeout: 60_000, queueSize: 1 } as FailoverConfig);
  t.teardown(() => router.close());
  const ac = new AbortController();
  const waiting = router.acquire(() => new Set(), Date.now() + 60_000, ac.signal);
  await t.rejects(router.acquire(() => new Set(), Date.now() + 60_000, ac.signal), { code: 'PGW_QUEUE_FULL', sqlstate: '53300' });
  ac.abort();
  await t.rejects(waiting, { code: 'PGW_CLIENT_GONE' });
  t.equal(router.queued, 0);
});

t.test('router: excluded backends are skipped until the exclusion lapses', async (t) => {
  const topo = cluster();
  topo.update('pg1', primaryUp());
  const router = new Router(listener('primary'), topo, { queueTimeout: 60_000, queueSize: 10 } as FailoverConfig);
  t.teardown(() => router.close());
  let excluded = new Set(['pg1']);
  const p = router.acquire(() => excluded, Date.now() + 60_000, new AbortController().signal);
  t.equal(router.queued, 1);
  excluded = new Set();
  topo.update('pg1', primaryUp());
  t.equal((await p).name, 'pg1');
});

t.test('split brain with timelines: the newest timeline keeps writes, the other is fenced', async (t) => {
  const topo = cluster();
  const fenced: unknown[] = [];
  topo.on('fenced', (f) => fenced.push(f));
  const primaryOn = (timeline: number, lsn: bigint): CheckerSnapshot => ({ state: 'up', transitional: false, lastResult: { ok: true, role: 'primary', currentLsn: lsn, timeline, durationMs: 1 } });
  topo.update('pg2', primaryOn(2, 5000n));
  topo.update('pg1', primaryOn(1, 9000n)); // old primary restarted: more WAL, older timeline
  t.equal(topo.primary()?.name, 'pg2');
  t.equal(topo.get('pg1')!.fenced, true);
  t.match(fenced, [{ backend: 'pg1', keep: 'pg2' }]);
  t.same(names(candidatesFor(listener('any'), topo).backends), ['pg2'], 'a fenced server takes no sessions at all');
  t.match(candidatesFor(listener('replica'), topo).reason, /pg1 fenced/);
  topo.update('pg1', replicaUp(5000n));
  t.equal(topo.get('pg1')!.fenced, false, 'back in recovery: no longer fenced');
  t.same(names(candidatesFor(listener('replica'), topo).backends), ['pg1']);
});

t.test('admin states: drain and maint take no new sessions; agent down/drain too; weight scales', async (t) => {
  const topo = cluster();
  topo.update('pg1', primaryUp());
  topo.update('pg2', replicaUp());
  topo.update('pg3', replicaUp());
  topo.setAdminState('pg2', 'drain');
  t.same(names(candidatesFor(listener('replica'), topo).backends), ['pg3']);
  topo.setAdminState('pg3', 'maint');
  t.match(candidatesFor(listener('replica'), topo).reason, /pg2 draining, pg3 in maintenance/);
  topo.setAdminState('pg2', 'ready');
  topo.setAdminState('pg3', 'ready');
  topo.setAgent('pg3', { state: 'drain' });
  t.same(names(candidatesFor(listener('replica'), topo).backends), ['pg2']);
  topo.setAgent('pg3', { state: 'up', weightPercent: 50 });
  t.equal(topo.get('pg3')!.effectiveWeight, 50);
  t.same(names(candidatesFor(listener('replica'), topo).backends), ['pg2', 'pg3']);
});
