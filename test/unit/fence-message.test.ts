// The split-brain fence as the timeline tells it: a second healthy primary is an error ("both
// accept writes"); a replica promoted while the old primary was still failing its checks (the
// usual failover once replicas are role polled during the gap) is the same fence, told as what
// it is, at warn. The rule itself is the topology's (routing.test.ts, role-watch.test.ts).
import t from 'tap';
import type { BackendConfig, Config } from '../../src/config/types';
import { reactToTopology } from '../../src/control/reactions';
import type { PrimaryLoss } from '../../src/control/primary-loss';
import { Timeline } from '../../src/control/timeline';
import { Bus } from '../../src/events';
import type { HookRunner } from '../../src/hooks/runner';
import { createLogger } from '../../src/logger';
import { Topology, type CheckerSnapshot } from '../../src/routing/topology';

const backend = (name: string): BackendConfig => ({ name, host: '127.0.0.1', port: 5432, weight: 100, backup: false });
const primaryOn = (timeline: number): CheckerSnapshot => ({ state: 'up', transitional: false, lastResult: { ok: true, role: 'primary', timeline, currentLsn: 100n, durationMs: 1 } });
const replica: CheckerSnapshot = { state: 'up', transitional: false, lastResult: { ok: true, role: 'replica', replayLsn: 100n, durationMs: 1 } };
const failing: CheckerSnapshot = { state: 'up', transitional: true, role: 'primary', lastResult: { ok: false, layer: 'L4CON', message: 'connect ECONNREFUSED', durationMs: 1 } };

function setup() {
  const topology = new Topology([backend('pg1'), backend('pg2')], { maxReplicaLag: {} });
  const bus = new Bus();
  const log = createLogger('silent');
  const timeline = new Timeline(bus, log);
  const hooks: string[] = [];
  const ctx = {
    topology,
    timeline,
    bus,
    log,
    config: { failover: { onDown: 'shutdown-sessions' } } as unknown as Config,
    hooks: { run: async (event: string) => (hooks.push(event), []) } as unknown as HookRunner,
    sessions: () => [],
    endpoint: (name: string | undefined) => (name ? { name, host: '127.0.0.1', port: 5432 } : undefined),
    clusterHooksHere: () => true,
  };
  reactToTopology(ctx, { onPrimary: () => undefined } as unknown as PrimaryLoss);
  const fenced = () => timeline.recent().filter((e) => e.event === 'backend.fenced');
  return { topology, fenced, hooks };
}

t.test('a second healthy primary on an older timeline: split brain, an error', async (t) => {
  const { topology, fenced, hooks } = setup();
  topology.update('pg2', primaryOn(2));
  topology.update('pg1', primaryOn(1));
  t.match(fenced(), [{ level: 'error', message: /split brain: pg1 \(timeline 1\) and pg2 \(timeline 2\) both accept writes/ }]);
  t.ok(hooks.includes('on_fence'));
});

t.test('promoted while the old primary fails its checks: the same fence, at warn, said as it is', async (t) => {
  const { topology, fenced, hooks } = setup();
  topology.update('pg1', primaryOn(1));
  topology.update('pg2', replica);
  topology.update('pg1', failing);
  topology.update('pg2', primaryOn(2));
  t.equal(topology.primary()?.name, 'pg2');
  t.equal(topology.get('pg1')!.fenced, true, 'the fencing rule is unchanged');
  t.match(fenced(), [{ level: 'warn', message: /pg2 \(timeline 2\) was promoted while pg1 \(timeline 1\) was failing its checks; writes go to pg2, pg1 is fenced until/ }]);
  t.ok(hooks.includes('on_fence'), 'on_fence runs as for any fence');
});
