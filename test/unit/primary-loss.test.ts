// PrimaryLoss on a FakeClock: fast pokes while there is no primary, promotion after
// promote_after of the replica that replayed the most (within max_lag_on_failover), cancelled
// when a primary comes back, and no timer left after close().
import t, { type Test } from 'tap';
import { FakeClock } from '../../src/clock';
import type { BackendConfig, Config } from '../../src/config/types';
import { PrimaryLoss } from '../../src/control/primary-loss';
import { Timeline } from '../../src/control/timeline';
import { Bus } from '../../src/events';
import type { HookRunner } from '../../src/hooks/runner';
import { createLogger } from '../../src/logger';
import { Topology, type CheckerSnapshot } from '../../src/routing/topology';

// Port 1 on loopback refuses at once: pg_promote() "fails" without a server, which is enough to
// see which replica was chosen.
const backend = (name: string): BackendConfig => ({ name, host: '127.0.0.1', port: 1, weight: 100, backup: false });
const primaryUp = (lsn: bigint): CheckerSnapshot => ({ state: 'up', transitional: false, lastResult: { ok: true, role: 'primary', currentLsn: lsn, durationMs: 1 } });
const replicaUp = (replay: bigint): CheckerSnapshot => ({
  state: 'up', transitional: false, lastResult: { ok: true, role: 'replica', replayLsn: replay, receiveLsn: replay, replayLagSeconds: 0, durationMs: 1 },
});
const down: CheckerSnapshot = { state: 'down', transitional: false, lastResult: { ok: false, layer: 'L4CON', message: 'connect ECONNREFUSED', durationMs: 1 } };

function setup(t: Test, failover: { mode: 'follow' | 'promote'; maxLagOnFailover?: number }) {
  const clock = new FakeClock(0);
  const topology = new Topology([backend('pg1'), backend('pg2'), backend('pg3')], { maxReplicaLag: {} });
  const timeline = new Timeline(new Bus(), createLogger('silent'));
  const config = {
    health: { fastInterval: 100, timeout: 1000, user: 'pgwarden', database: 'postgres' },
    failover: { promoteAfter: 1000, maxLagOnFailover: 1_000_000, ...failover },
    tls: { mode: 'passthrough', server: 'disable' },
  } as unknown as Config;
  const pokes: string[] = [];
  const loss = new PrimaryLoss({
    topology,
    timeline,
    config: () => config,
    hooks: () => ({ run: async () => [] }) as unknown as HookRunner,
    pokeAll: () => pokes.push('all'),
    poke: (b) => pokes.push(b),
    endpoint: () => undefined,
    switching: () => false,
    coordinated: () => false,
    clock,
  });
  topology.on('primary', (p) => loss.onPrimary(p));
  t.teardown(() => loss.close());
  topology.update('pg1', primaryUp(10_000n));
  topology.update('pg2', replicaUp(9_000n));
  topology.update('pg3', replicaUp(9_500n));
  const events = (name: string) => timeline.recent().filter((e) => e.event.startsWith(name));
  return { clock, topology, pokes, loss, events };
}

t.test('no primary: every backend is poked each fast_interval until one is back', async (t) => {
  const { clock, topology, pokes, events } = setup(t, { mode: 'follow' });
  topology.update('pg1', down);
  t.equal(topology.primary(), undefined);
  clock.advance(99);
  t.same(pokes, [], 'not before fast_interval');
  clock.advance(1);
  clock.advance(100);
  clock.advance(100);
  t.same(pokes, ['all', 'all', 'all'], 'one poke of every backend per fast_interval');
  clock.advance(60_000);
  t.same(events('failover.'), [], 'follow mode never promotes');
  topology.update('pg1', primaryUp(10_000n));
  const before = pokes.length;
  t.equal(clock.pendingTimers, 0, 'a primary back: no timer left');
  clock.advance(1000);
  t.equal(pokes.length, before, 'and no more pokes');
});

t.test('promote mode: after promote_after, the replica that replayed the most', async (t) => {
  const { clock, topology, events } = setup(t, { mode: 'promote' });
  topology.update('pg1', down);
  t.match(events('failover.'), [{ event: 'failover.pending', level: 'warn' }]);
  await clock.advanceAsync(999);
  t.same(events('failover.promote'), [], 'not before promote_after');
  await clock.advanceAsync(1);
  t.match(events('failover.promote'), [{ event: 'failover.promote', backend: 'pg3', message: /^promoting pg3 \(replayed 9500\)/ }]);
  // pg_promote() on port 1 is refused: reported, nothing else happens.
  await until(() => events('failover.promote_failed').length === 1);
  t.match(events('failover.promote_failed'), [{ backend: 'pg3', message: /^pg_promote\(\) on pg3 \(127\.0\.0\.1:1\) failed: .*ECONNREFUSED/ }]);
});

t.test('promote mode: a primary back within promote_after cancels the promotion', async (t) => {
  const { clock, topology, events } = setup(t, { mode: 'promote' });
  topology.update('pg1', down);
  await clock.advanceAsync(500);
  topology.update('pg1', primaryUp(10_000n));
  t.equal(clock.pendingTimers, 0, 'promotion timer and pokes cleared');
  await clock.advanceAsync(10_000);
  t.same(events('failover.promote'), [], 'nothing promoted');
});

t.test('promote mode: no replica within max_lag_on_failover', async (t) => {
  const { clock, topology, events } = setup(t, { mode: 'promote', maxLagOnFailover: 100 });
  topology.update('pg1', down);
  await clock.advanceAsync(1000);
  t.match(events('failover.no_candidate'), [{ level: 'error', message: /max_lag_on_failover 100 bytes of pg1/ }]);
  t.same(events('failover.promote'), []);
});

t.test('close() clears every timer', async (t) => {
  const { clock, topology, loss } = setup(t, { mode: 'promote' });
  topology.update('pg1', down);
  t.equal(clock.pendingTimers, 2, 'the urgent pokes and the promotion');
  loss.close();
  t.equal(clock.pendingTimers, 0);
});

/** Real-time wait with a deadline, for the one step that does real I/O (a refused connect). */
async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
