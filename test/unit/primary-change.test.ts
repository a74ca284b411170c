// When on_primary_change runs: once per change of the primary, never at the first discovery,
// across a no-primary gap with the last primary before it as the old one. First the decision on
// its own, then through the App's wiring (a Topology fed by hand, no checker started, no socket).
import t, { type Test } from 'tap';
import { App } from '../../src/app';
import { parseConfig } from '../../src/config/load';
import type { HookEvent } from '../../src/config/types';
import { PrimaryChangeTracker } from '../../src/control/primary-change';
import type { HookContext } from '../../src/hooks/env';
import type { HookRunner } from '../../src/hooks/runner';
import { createLogger } from '../../src/logger';
import type { CheckerSnapshot } from '../../src/routing/topology';

const pg1 = { name: 'pg1', host: '10.0.0.1', port: 5432 };
const pg2 = { name: 'pg2', host: '10.0.0.2', port: 5432 };
const pg3 = { name: 'pg3', host: '10.0.0.3', port: 5432 };

t.test('the tracker: first discovery is not a change; a gap keeps the old primary; a return is not a change', async (t) => {
  const tracker = new PrimaryChangeTracker();
  t.equal(tracker.observe(undefined), undefined, 'no primary at startup: nothing');
  t.equal(tracker.observe(pg1), undefined, 'the first primary seen is not a change');
  t.equal(tracker.observe(pg1), undefined, 'the same primary again: nothing');
  t.same(tracker.observe(pg2), { oldPrimary: pg1, newPrimary: pg2 }, 'pg1 → pg2 directly (a switchover seen in one check)');
  t.equal(tracker.observe(undefined), undefined, 'the primary is lost: a gap, not a change');
  t.equal(tracker.observe(undefined), undefined, 'still no primary');
  t.same(tracker.observe(pg3), { oldPrimary: pg2, newPrimary: pg3 }, 'after the gap: old is the last primary before it');
  t.equal(tracker.observe(undefined), undefined);
  t.equal(tracker.observe(pg3), undefined, 'the same server back after a gap (a restart) is not a change');
  t.same(tracker.observe({ ...pg1, host: '10.9.9.9' }), { oldPrimary: pg3, newPrimary: { ...pg1, host: '10.9.9.9' } });
  t.same(tracker.last, { ...pg1, host: '10.9.9.9' });
});

const CONFIG = `listeners:
  - { name: rw, bind: "127.0.0.1:6432", route: primary }   # never bound: the App is not started
backends:
  - { name: pg1, host: 10.0.0.1, port: 5432 }
  - { name: pg2, host: 10.0.0.2, port: 5432 }
  - { name: pg3, host: 10.0.0.3, port: 5432 }
`;

const primary = (timeline: number): CheckerSnapshot => ({ state: 'up', transitional: false, lastResult: { ok: true, role: 'primary', currentLsn: 1000n, timeline, durationMs: 1 } });
const replica = (): CheckerSnapshot => ({ state: 'up', transitional: false, lastResult: { ok: true, role: 'replica', replayLsn: 1000n, receiveLsn: 1000n, replayLagSeconds: 0, durationMs: 1 } });
const down = (): CheckerSnapshot => ({
  state: 'down', transitional: false, lastFailure: { ok: false, layer: 'L4CON', message: 'connect ECONNREFUSED', durationMs: 1 }, lastResult: { ok: false, layer: 'L4CON', message: 'connect ECONNREFUSED', durationMs: 1 },
});

/** An App that is never started, whose hook runs are recorded instead of spawned. */
function app(t: Test) {
  const a = new App(parseConfig(CONFIG, {}), createLogger('silent'));
  const runs: { event: HookEvent; ctx: HookContext }[] = [];
  a.hooks = { run: async (event: HookEvent, ctx: HookContext = {}) => (runs.push({ event, ctx }), []), close: async () => undefined } as unknown as HookRunner;
  t.teardown(() => a.stop(0));
  const changes = () => runs.filter((r) => r.event === 'on_primary_change').map((r) => `${r.ctx.oldPrimary?.name} → ${r.ctx.newPrimary?.name}`);
  return { a, runs, changes };
}

t.test('App: startup discovery runs nothing; a followed failover through a gap runs once with both primaries', async (t) => {
  const { a, runs, changes } = app(t);
  a.topology.update('pg2', replica());
  a.topology.update('pg1', primary(1));
  a.topology.update('pg3', replica());
  a.topology.update('pg1', primary(1));
  t.same(changes(), [], 'pg1 found at startup: no on_primary_change');

  a.topology.update('pg1', down());
  t.same(changes(), [], 'pg1 down, no primary yet: nothing');
  a.topology.update('pg2', primary(2)); // promoted from outside
  a.topology.update('pg2', primary(2));
  a.topology.update('pg3', replica());
  t.same(changes(), ['pg1 → pg2'], 'pg2 promoted: one run, old = pg1 (down)');
  const run = runs.find((r) => r.event === 'on_primary_change')!;
  t.same(run.ctx, { oldPrimary: pg1, newPrimary: pg2 }, 'the context carries both addresses');

  a.topology.update('pg1', primary(1)); // the old primary restarts on its old timeline: fenced
  t.equal(a.topology.get('pg1')?.fenced, true);
  t.same(changes(), ['pg1 → pg2'], 'the old primary coming back fenced changes nothing');
});

t.test('App: a promotion seen while the old primary still answers (a switchover) runs once', async (t) => {
  const { a, changes } = app(t);
  a.topology.update('pg1', primary(1));
  a.topology.update('pg2', replica());
  a.topology.update('pg2', primary(2)); // promoted: pg1 is fenced, pg2 takes the writes
  a.topology.update('pg1', primary(1));
  a.topology.update('pg2', primary(2));
  t.same(changes(), ['pg1 → pg2']);
});

t.test('App: the primary restarting (down, then back) is not a change', async (t) => {
  const { a, changes } = app(t);
  a.topology.update('pg1', primary(1));
  a.topology.update('pg1', down());
  a.topology.update('pg1', primary(1));
  t.same(changes(), []);
});
