// The pure parts of coordination through etcd: reading the cluster's keys (a value pgwarden did
// not write is ignored, never thrown), the quorum, who takes writes under the cluster's
// authority or with etcd out of reach, our own lease deadline (the time a renewal was SENT plus
// the TTL granted; a process paused past it finds it gone), and a leader whose lease deadline
// passed publishing nothing. The store here is a scripted double of our own small interface
// (src/coordination/store.ts); the real etcd is in the integration tests.
import t from 'tap';
import { FakeClock, type Clock } from '../../src/clock';
import type { Condition, CoordinationStore, StoreSnapshot, Write } from '../../src/coordination/store';
import { quorum, readCluster } from '../../src/control/coordination/cluster-keys';
import { LeaseKeeper } from '../../src/control/coordination/lease-keeper';
import { LeaderDuties } from '../../src/control/coordination/leader';
import type { CoordinationDeps } from '../../src/control/coordination/deps';
import { decideUnderAuthority } from '../../src/routing/primary-authority';
import { Topology, type CheckerSnapshot } from '../../src/routing/topology';
import { testBackend, testHealth } from '../helpers/health-fixtures';

const snap = (entries: Record<string, string>, lease = '7'): StoreSnapshot => ({
  revision: '10',
  keys: new Map(Object.entries(entries).map(([k, value]) => [k, { value, modRevision: '5', lease }])),
});

t.test('readCluster parses what pgwarden writes and reports anything else as unreadable', async (t) => {
  const v = readCluster(
    snap({
      leader: 'b',
      state: JSON.stringify({ epoch: 3, phase: 'stable', primary: 'pg2', fenced: ['pg1'], by: 'b', at: 1 }),
      'members/a': JSON.stringify({ name: 'a', ackEpoch: 3, at: 1 }),
      'members/c': '{not json',
      'votes/a': JSON.stringify({ epoch: 3, primary: 'pg2', at: 1 }),
      'votes/b': JSON.stringify({ epoch: 'three' }),
      switchover: JSON.stringify({ id: 'x', to: 'pg3', by: 'a', at: 1 }),
    }),
  );
  t.same(v.leader, { name: 'b', lease: '7' });
  t.match(v.state, { epoch: 3, primary: 'pg2', fenced: ['pg1'] });
  t.equal(v.stateRevision, '5', 'the revision a leader conditions its next write on');
  t.same([...v.members.keys()], ['a']);
  t.same([...v.votes.keys()], ['a']);
  t.equal(v.switchover?.to, 'pg3');
  t.same([...v.unreadable].sort(), ['members/c', 'votes/b']);
  t.same(readCluster(snap({ state: '"just a string"' })).state, undefined, 'a state that is no object is absent');
});

t.test('a quorum is a majority of the static member list', async (t) => {
  t.equal(quorum(['a']), 1);
  t.equal(quorum(['a', 'b']), 2);
  t.equal(quorum(['a', 'b', 'c']), 2);
  t.equal(quorum(['a', 'b', 'c', 'd']), 3);
  t.equal(quorum(['a', 'b', 'c', 'd', 'e']), 3);
});

t.test('who takes writes under an authority', async (t) => {
  const s = (name: string, timeline: number, fenced = false) => ({ name, timeline, fenced });
  const cluster = decideUnderAuthority({ kind: 'cluster', primary: 'pg2' }, [s('pg1', 1), s('pg2', 2, true)]);
  t.not(cluster, 'local');
  if (cluster !== 'local') {
    t.equal(cluster.primary?.name, 'pg2', 'the agreed primary, when the checks see it as primary');
    t.same(cluster.fence.map((v) => v.name), ['pg1'], 'every other claimant is fenced');
    t.same(cluster.unfence.map((u) => u.view.name), ['pg2'], 'the agreed primary is unfenced');
  }
  const none = decideUnderAuthority({ kind: 'cluster', primary: undefined }, [s('pg1', 1)]);
  t.match(none, { primary: undefined, fence: [{ name: 'pg1' }] }, 'handshake under way: no primary, the old one fenced');
  const gone = decideUnderAuthority({ kind: 'cluster', primary: 'pg2' }, [s('pg1', 1)]);
  t.match(gone, { primary: undefined }, 'the agreed primary not seen as primary here: no writes (not the other claimant)');

  const sticky = (primary: string | undefined, timeline: number | undefined, writes = true) => ({ kind: 'sticky' as const, primary, timeline, writes });
  t.match(decideUnderAuthority(sticky('pg1', 1), [s('pg1', 1)]), { primary: { name: 'pg1' } }, 'etcd lost: the known primary is kept');
  t.match(decideUnderAuthority(sticky('pg1', 1), [s('pg1', 1), s('pg3', 2)]), { primary: { name: 'pg3' }, fence: [{ name: 'pg1' }] }, 'exactly one newer primary is adopted');
  t.match(decideUnderAuthority(sticky('pg1', 1), [s('pg2', 2), s('pg3', 2)]), { primary: undefined, fence: [] }, 'two newer ones: no guess, no writes');
  t.match(decideUnderAuthority(sticky('pg1', 1), [s('pg2', 1)]), { primary: undefined }, 'another primary on the same timeline is not adopted');
  t.equal(decideUnderAuthority(sticky(undefined, undefined), [s('pg1', 1)]), 'local', 'never agreed on one: the local rule');
  t.match(decideUnderAuthority(sticky('pg1', 1, false), [s('pg1', 1)]), { primary: undefined, fence: [] }, 'on_etcd_loss readonly: no writes at all');
});

/** A store double: grant and keepalive answer what the test scripts; writes are recorded. */
function scriptedStore(): CoordinationStore & { writes: { conditions: readonly Condition[]; writes: readonly Write[] }[]; keepAliveAnswer: () => Promise<number> } {
  const store = {
    writes: [] as { conditions: readonly Condition[]; writes: readonly Write[] }[],
    keepAliveAnswer: async () => 3000,
    grant: async (ttlMs: number) => ({ id: '42', ttlMs }),
    keepAlive: () => store.keepAliveAnswer(),
    revoke: async () => undefined,
    read: async () => snap({}),
    transact: async (conditions: readonly Condition[], writes: readonly Write[]) => {
      store.writes.push({ conditions, writes });
      return true;
    },
    watch: () => () => undefined,
    close: async () => undefined,
  };
  return store;
}

const settle = () => new Promise((r) => setImmediate(r));

t.test('the lease deadline is the send time of the last renewal plus the TTL granted', async (t) => {
  const clock = new FakeClock(1_000);
  const store = scriptedStore();
  const events: string[] = [];
  const lease = new LeaseKeeper(store, 3000, clock, { held: (id) => events.push(`held ${id}`), lost: (r) => events.push(`lost: ${r}`) });
  lease.start();
  await settle();
  t.same(events, ['held 42']);
  t.equal(lease.valid(), '42');
  t.equal(lease.remaining(), 3000, 'granted at 1000 for 3000 ms: deadline 4000');

  // A renewal at 2000 whose answer comes back late still counts from when it was sent.
  let answer!: (ms: number) => void;
  store.keepAliveAnswer = () => new Promise((r) => (answer = r));
  clock.advance(1000);
  clock.advance(500);
  answer(3000);
  await settle();
  t.equal(lease.remaining(), 3000 - 500, 'deadline 2000 + 3000 = 5000, seen at 2500');

  // etcd stops answering: the deadline passes and the lease is lost, once.
  store.keepAliveAnswer = () => Promise.reject(new Error('unreachable'));
  store.grant = () => Promise.reject(new Error('unreachable'));
  for (let i = 0; i < 10; i++) {
    await clock.advanceAsync(500);
  }
  t.equal(lease.valid(), undefined, 'no lease past the deadline');
  t.equal(events.filter((e) => e.startsWith('lost')).length, 1, 'lost reported once');
  t.match(events.at(-1), /lost: no renewal before our lease deadline \(.*unreachable\)/);
  await lease.close();
});

t.test('a process paused past its deadline finds no lease when it wakes, before any timer runs', async (t) => {
  const fake = new FakeClock(0);
  let paused = 0;
  const clock: Clock = { now: () => fake.now() + paused, setTimeout: (fn, ms) => fake.setTimeout(fn, ms) };
  const lease = new LeaseKeeper(scriptedStore(), 3000, clock, { held: () => undefined, lost: () => undefined });
  lease.start();
  await settle();
  t.equal(lease.valid(), '42');
  paused = 3001; // SIGSTOP for just over the TTL: no timer has had a chance to run
  t.equal(lease.valid(), undefined, 'valid() reads the deadline, not an event');
  t.equal(lease.valid(500), undefined);
  await lease.close();
});

t.test('a leader whose lease deadline passed publishes nothing', async (t) => {
  const fake = new FakeClock(0);
  let paused = 0;
  const clock: Clock = { now: () => fake.now() + paused, setTimeout: (fn, ms) => fake.setTimeout(fn, ms) };
  const store = scriptedStore();
  const lease = new LeaseKeeper(store, 3000, clock, { held: () => undefined, lost: () => undefined });
  lease.start();
  await settle();
  const topology = new Topology([testBackend('pg1')], testHealth);
  const primaryUp: CheckerSnapshot = { state: 'up', transitional: false, lastResult: { ok: true, role: 'primary', currentLsn: 1n, timeline: 1, durationMs: 1 } };
  topology.update('pg1', primaryUp);
  const timeline = { add: () => undefined };
  const deps = {
    settings: { name: 'a', members: ['a', 'b', 'c'], ttl: 3000, onEtcdLoss: 'keep', etcd: { endpoints: [], prefix: '/p', timeout: 500 } },
    store,
    topology,
    timeline,
    clock,
  } as unknown as CoordinationDeps;
  const leader = new LeaderDuties(deps, lease);
  const view = readCluster({ revision: '1', keys: new Map([['leader', { value: 'a', modRevision: '1', lease: '42' }]]) });

  paused = 3001;
  await leader.act(view);
  t.same(store.writes, [], 'no state written on a lease past its deadline');

  paused = 0;
  await leader.act(view);
  t.equal(store.writes.length, 1, 'with the lease in force, the first state is written');
  t.same(store.writes[0]!.conditions, [{ key: 'leader', lease: '42' }, { key: 'state', absent: true }], 'conditioned on holding the leader key and on the state read');
  await lease.close();
});

t.test('just after a promotion, the old primary still claiming is not followed back', async (t) => {
  const clock = new FakeClock(0);
  const store = scriptedStore();
  const lease = new LeaseKeeper(store, 3000, clock, { held: () => undefined, lost: () => undefined });
  lease.start();
  await settle();
  const topology = new Topology([testBackend('pg1'), testBackend('pg2')], testHealth);
  topology.update('pg1', { state: 'up', transitional: false, lastResult: { ok: true, role: 'primary', currentLsn: 1n, timeline: 1, durationMs: 1 } });
  // pg2 was promoted a moment ago; this leader's checks still see it as a replica.
  topology.update('pg2', { state: 'up', transitional: false, lastResult: { ok: true, role: 'replica', currentLsn: 1n, timeline: 1, durationMs: 1 } });
  const deps = {
    settings: { name: 'a', members: ['a', 'b', 'c'], ttl: 3000, onEtcdLoss: 'keep', etcd: { endpoints: [], prefix: '/p', timeout: 500 } },
    store,
    topology,
    timeline: { add: () => undefined },
    clock,
    config: () => ({ failover: { mode: 'promote', maxLagOnFailover: 0 } }),
  } as unknown as CoordinationDeps;
  const leader = new LeaderDuties(deps, lease);
  const state = { epoch: 5, phase: 'stable', primary: 'pg2', old: 'pg1', fenced: ['pg1'], by: 'a', at: 1 };
  const view = readCluster({
    revision: '9',
    keys: new Map([
      ['leader', { value: 'a', modRevision: '1', lease: '42' }],
      ['state', { value: JSON.stringify(state), modRevision: '9', lease: '0' }],
    ]),
  });
  await leader.act(view);
  const published = store.writes.flatMap((w) => w.writes).filter((w) => 'put' in w && w.put === 'state');
  t.same(published, [], 'the state stays with pg2: nothing is published until the checks see the new primary');
  await lease.close();
});
