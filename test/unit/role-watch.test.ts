// Following a promotion quickly (issue 18), on a FakeClock: the checker polls a healthy replica's
// role every watch interval only while watched, and a poll that sees the server out of recovery
// (or fails) runs a full check at once; RoleWatch watches exactly during the failover gap (no
// primary, or a primary failing its checks); and a healthy replica that reports primary is the
// write target on its first good check, with the fencing rules unchanged.
import t, { type Test } from 'tap';
import { FakeClock } from '../../src/clock';
import { testBackend, testHealth } from '../helpers/health-fixtures';
import type { BackendConfig, Config, HealthConfig } from '../../src/config/types';
import { HealthChecker, type PollEvent } from '../../src/health/checker';
import type { Probe, ProbeResult } from '../../src/health/types';
import { RoleWatch, inFailoverGap } from '../../src/control/role-watch';
import { Topology, type CheckerSnapshot } from '../../src/routing/topology';
import { candidatesFor } from '../../src/routing/candidates';

const backend = testBackend;

const health: HealthConfig = testHealth;

const REPLICA: ProbeResult = { ok: true, role: 'replica', replayLsn: 100n, receiveLsn: 100n, replayLagSeconds: 0, durationMs: 1 };
const PRIMARY: ProbeResult = { ok: true, role: 'primary', currentLsn: 200n, timeline: 2, durationMs: 1 };
const REFUSED: ProbeResult = { ok: false, layer: 'L4CON', message: 'connect ECONNREFUSED', durationMs: 1 };
const ROLE_REPLICA: ProbeResult = { ok: true, role: 'replica', durationMs: 0 };
const ROLE_PRIMARY: ProbeResult = { ok: true, role: 'primary', durationMs: 0 };

/** A probe whose checks and polls answer what the test sets, recording when each ran. */
function server(clock: FakeClock) {
  const s = { check: REPLICA, poll: ROLE_REPLICA, checks: [] as number[], polls: [] as number[] };
  const probe: Probe = Object.assign(
    () => {
      s.checks.push(clock.now());
      return Promise.resolve(s.check);
    },
    {
      poll: () => {
        s.polls.push(clock.now());
        return Promise.resolve(s.poll);
      },
    },
  );
  return { s, probe };
}

async function replicaChecker(t: Test) {
  const clock = new FakeClock(0);
  const { s, probe } = server(clock);
  const checker = new HealthChecker({ backend: backend('pg2'), health, probe, clock });
  const polls: PollEvent[] = [];
  checker.on('poll', (e) => polls.push(e));
  t.teardown(() => checker.stop());
  checker.start();
  await clock.advanceAsync(0);
  t.match(checker.status, { state: 'up', role: 'replica' });
  return { clock, s, checker, polls };
}


t.test('no polls unless watched: checks at interval only', async (t) => {
  const { clock, s } = await replicaChecker(t);
  await clock.advanceAsync(4000);
  t.same(s.checks, [0, 2000, 4000]);
  t.same(s.polls, []);
});

t.test('while watched a healthy replica is polled at once and every watch interval; the checks keep their interval; unwatched, the polls stop', async (t) => {
  const { clock, s, checker, polls } = await replicaChecker(t);
  await clock.advanceAsync(100);
  checker.watch(50);
  t.same(s.polls, [100], 'the first poll runs at once: the promotion may be done already');
  await clock.advanceAsync(0);
  await clock.advanceAsync(300);
  t.same(s.polls, [100, 150, 200, 250, 300, 350, 400]);
  t.same(s.checks, [0], 'polls are not checks');
  t.equal(checker.status.successes + checker.status.failures, 0, 'polls never move rise/fall');
  await clock.advanceAsync(1600);
  t.same(s.checks, [0, 2000], 'the routine check still runs at interval');
  t.ok(polls.every((p) => !p.checkNow && p.result.ok));
  checker.watch(undefined);
  const before = s.polls.length;
  await clock.advanceAsync(4000);
  t.equal(s.polls.length, before, 'no poll after the gap');
  t.same(s.checks, [0, 2000, 4000, 6000], 'checks at interval again');
  checker.stop();
  t.equal(clock.pendingTimers, 0, 'stop() leaves no timer');
});

t.test('a poll that sees the server out of recovery runs a full check at once; the new primary is not polled', async (t) => {
  const { clock, s, checker, polls } = await replicaChecker(t);
  checker.watch(50);
  await clock.advanceAsync(0);
  await clock.advanceAsync(100);
  s.poll = ROLE_PRIMARY;
  s.check = PRIMARY;
  await clock.advanceAsync(50);
  t.same(s.checks, [0, 150], 'the poll at 150 saw primary: a check at 150');
  t.match(polls.at(-1), { checkNow: true, result: { role: 'primary' } });
  t.match(checker.status, { state: 'up', role: 'primary', transitional: false });
  const n = s.polls.length;
  await clock.advanceAsync(1000);
  t.equal(s.polls.length, n, 'a primary is not polled');
});

t.test('a failed poll runs a full check at once (fall counts checks, not polls)', async (t) => {
  const { clock, s, checker } = await replicaChecker(t);
  checker.watch(50);
  await clock.advanceAsync(0);
  s.poll = { ok: false, layer: 'L7QUERY', message: 'no kept check connection to poll on', durationMs: 0 };
  await clock.advanceAsync(50);
  t.same(s.checks, [0, 50]);
  t.match(checker.status, { state: 'up', failures: 0 }, 'the check succeeded: nothing counted');
});

t.test('only a healthy replica is polled: not one going down, not one that is down (rise applies)', async (t) => {
  const { clock, s, checker } = await replicaChecker(t);
  s.check = REFUSED;
  await clock.advanceAsync(2000);
  t.match(checker.status, { state: 'up', failures: 1 });
  checker.watch(50);
  await clock.advanceAsync(1000);
  t.same(s.polls, [], 'going down: checked at fast_interval, not polled');
  await clock.advanceAsync(1000);
  t.equal(checker.status.state, 'down');
  s.check = PRIMARY;
  await clock.advanceAsync(4000); // t=8000: the down_interval check
  t.match(checker.status, { state: 'down', successes: 1 }, 'back as a primary, it still needs rise checks');
  t.same(s.polls, []);
});

t.test('a poke during a poll is a check right after it, still at most one per fast_interval', async (t) => {
  const clock = new FakeClock(0);
  const { s, probe } = server(clock);
  let release: (() => void) | undefined;
  probe.poll = () => {
    s.polls.push(clock.now());
    return new Promise((resolve) => (release = () => resolve(ROLE_REPLICA)));
  };
  const checker = new HealthChecker({ backend: backend('pg2'), health, probe, clock });
  t.teardown(() => checker.stop());
  checker.start();
  await clock.advanceAsync(600);
  checker.watch(50);
  t.same(s.polls, [600]);
  checker.poke('session connect failed');
  t.same(s.checks, [0], 'no second probe while the poll is in flight');
  release!();
  await clock.advanceAsync(0);
  t.same(s.checks, [0, 600]);
  await clock.advanceAsync(50);
  t.same(s.polls, [600, 650], 'polled again a watch interval after that check');
  checker.poke('another failed session');
  release!();
  probe.poll = () => {
    s.polls.push(clock.now());
    return Promise.resolve(ROLE_REPLICA);
  };
  await clock.advanceAsync(0);
  t.same(s.checks, [0, 600], 'a burst of pokes still gets one check per fast_interval');
  await clock.advanceAsync(450);
  t.same(s.checks, [0, 600, 1100]);
});

// ---- RoleWatch: when ----------------------------------------------------------------------

const primaryOn = (timeline: number, lsn = 100n): CheckerSnapshot => ({ state: 'up', transitional: false, lastResult: { ok: true, role: 'primary', timeline, currentLsn: lsn, durationMs: 1 } });
const replica: CheckerSnapshot = { state: 'up', transitional: false, lastResult: REPLICA };
const goingDown: CheckerSnapshot = { state: 'up', transitional: true, role: 'primary', lastResult: REFUSED };
const down: CheckerSnapshot = { state: 'down', transitional: false, lastResult: REFUSED };

function cluster(watchInterval = 50) {
  const topology = new Topology([backend('pg1'), backend('pg2'), backend('pg3')], { maxReplicaLag: {} });
  const config = { failover: { watchInterval } } as unknown as Config;
  const calls: Array<number | undefined> = [];
  const watch = new RoleWatch({ topology, config: () => config, setWatch: (ms) => calls.push(ms) });
  return { topology, watch, calls };
}

t.test('RoleWatch: on while there is no primary or it fails its checks, off once one is healthy', async (t) => {
  const { topology, watch, calls } = cluster();
  t.same(calls, [50], 'no primary known at startup: watching');
  topology.update('pg1', primaryOn(1));
  topology.update('pg2', replica);
  topology.update('pg3', replica);
  t.same(calls, [50, undefined], 'a healthy primary: off');
  topology.update('pg2', replica);
  t.same(calls, [50, undefined], 'routine checks change nothing');
  topology.update('pg1', goingDown);
  t.equal(inFailoverGap(topology), true);
  t.same(calls, [50, undefined, 50], 'the primary failed a check: watching');
  topology.update('pg1', down);
  t.same(calls, [50, undefined, 50], 'down: still watching, no duplicate call');
  t.equal(watch.interval(), 50, 'new checkers (reload) start watched');
  topology.update('pg2', primaryOn(2));
  t.same(calls, [50, undefined, 50, undefined], 'a promoted replica: off');
  watch.close();
  t.equal(watch.interval(), undefined);
});

t.test('RoleWatch: a fenced primary is a gap; watch_interval 0 never watches; close() turns it off', async (t) => {
  const { topology, watch, calls } = cluster();
  topology.update('pg1', primaryOn(1));
  topology.update('pg2', primaryOn(2));
  t.equal(topology.get('pg1')!.fenced, true);
  t.equal(watch.interval(), undefined, 'pg2 is a healthy primary');
  topology.update('pg2', down);
  t.equal(topology.primary(), undefined, 'only the fenced pg1 claims primary');
  t.equal(watch.interval(), 50, 'no primary but a fenced one: watching');
  topology.update('pg2', primaryOn(2));
  topology.update('pg3', { state: 'up', transitional: false, lastResult: { ok: true, role: 'primary', durationMs: 1 } });
  t.equal(topology.primary(), undefined, 'split brain without timelines: writes held');
  t.equal(watch.interval(), 50, 'held writes: watching');
  watch.close();
  t.same(calls.at(-1), undefined);
  topology.update('pg2', replica);
  topology.update('pg1', down);
  t.equal(watch.interval(), undefined, 'closed: no more watching');

  const off = cluster(0);
  off.topology.update('pg1', down);
  t.same(off.calls, [], 'watch_interval 0: never');
});

// ---- Topology: the first good check after a promotion is enough -----------------------------

const rw = { name: 'rw', route: 'primary' as const, fallback: 'none' as const };

t.test('an up replica that reports primary is the write target on that one check when there is no other primary', async (t) => {
  const { topology } = cluster();
  topology.update('pg1', primaryOn(1));
  topology.update('pg2', replica);
  topology.update('pg1', down);
  t.equal(topology.primary(), undefined);
  const changes: unknown[] = [];
  topology.on('primary', (p) => changes.push(p));
  let woke = 0;
  topology.on('change', () => woke++);
  topology.update('pg2', primaryOn(2));
  t.equal(topology.primary()?.name, 'pg2', 'one good check, no rise');
  t.same(changes, [{ from: undefined, to: 'pg2' }]);
  t.ok(woke > 0, "'change' follows, which wakes the Router's queue");
  t.same(candidatesFor(rw, topology).backends.map((b) => b.name), ['pg2']);
});

t.test('promoted while the old primary is still failing its checks: the newer timeline keeps writes, the old one is fenced', async (t) => {
  const { topology } = cluster();
  topology.update('pg1', primaryOn(1, 500n));
  topology.update('pg2', replica);
  topology.update('pg1', { ...goingDown, lastResult: REFUSED });
  t.equal(topology.primary()?.name, 'pg1', 'failing but not down yet');
  topology.update('pg2', primaryOn(2, 400n));
  t.equal(topology.primary()?.name, 'pg2');
  t.equal(topology.get('pg1')!.fenced, true);
  topology.update('pg1', primaryOn(1, 900n));
  t.equal(topology.primary()?.name, 'pg2', 'the old primary back on its older timeline stays fenced');
});

t.test('fencing rules unchanged: a second primary on an older timeline is fenced; a fenced server reporting primary still waits', async (t) => {
  const { topology } = cluster();
  topology.update('pg2', primaryOn(2));
  topology.update('pg1', primaryOn(1));
  t.equal(topology.primary()?.name, 'pg2');
  t.equal(topology.get('pg1')!.fenced, true);
  topology.update('pg2', down);
  topology.update('pg1', primaryOn(1));
  t.equal(topology.primary(), undefined, 'pg1 stays fenced while it is a primary: writes wait');
  t.same(candidatesFor(rw, topology).backends, []);
  topology.update('pg3', replica);
  topology.update('pg3', primaryOn(3));
  t.equal(topology.primary()?.name, 'pg3', 'a promoted replica on a newer timeline takes writes at once');
});
