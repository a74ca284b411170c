// Several instances as one (issue "coordination through etcd", point 5): etcd trouble is not an
// outage. With etcd unreachable an instance never promotes, keeps the primary it knows, adopts
// a new one only when its own checks see exactly one primary on a newer timeline, says so, and
// rejoins when etcd is back. A leader stopped (SIGSTOP) past its lease does not act on stale
// leadership when it wakes. A promotion left half-done by a dead leader is finished by the next
// leader with the same candidate.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { freePort } from '../../src/harness/ports';
import { etcdAvailable } from '../helpers/etcd';
import { ADDRESS, NAMES, PREFIX, cutUnavailableReason, instanceYaml, startCluster3, startInstance, startTrio, waitForClusterPrimary, type Trio } from '../helpers/coordinated';
import { CHECK_USER, connect, waitFor, whoAnswers } from '../helpers/proxy';
import type { PgError } from '../helpers/failover';
import { startEtcd } from '../helpers/etcd';

const skip = etcdAvailable();
if (skip) t.comment(`skipped: ${skip}`);
const CLI = path.join(__dirname, '..', '..', 'dist', 'cli.js');
const FAILOVER = '  queue_timeout: 3s\n  mode: promote\n  promote_after: 1s';

const etcdReachable = (trio: Trio, n: (typeof NAMES)[number]) => trio.instances[n]?.app.status().coordination?.etcd.reachable;

t.test('etcd down everywhere: no promotion, the known primary kept, a newer one adopted, rejoin when etcd is back', { skip }, async (t) => {
  const trio = await startTrio(t, { failover: FAILOVER });
  const { cluster, etcd, instances } = trio;
  const [pg1, pg2, pg3] = cluster.nodes;
  await waitForClusterPrimary(trio, pg1);
  await waitFor('the cluster state names pg1', async () => (await trio.state())?.primary === 'pg1');
  // Each instance must have held its lease before etcd goes: one that never reached etcd routes by
  // the local rule and has nothing to lose (CI38: b and c had not yet been granted a lease).
  await waitFor('every instance holds its etcd lease', () => NAMES.every((n) => etcdReachable(trio, n) === true), 30_000);

  for (let i = 0; i < 3; i++) await etcd.killMember(i);
  await waitFor('every instance finds etcd out of reach', () => NAMES.every((n) => etcdReachable(trio, n) === false), 20_000);
  for (const n of NAMES) {
    t.same(await whoAnswers(instances[n].rwPort), { port: pg1.port, inRecovery: false }, `${n} keeps routing writes to pg1`);
    t.ok(instances[n].app.timeline.recent().some((e) => e.event === 'coordination.etcd_lost'), `${n} says so on its timeline`);
  }

  await cluster.kill9(pg1);
  const err = await connect(instances.a.rwPort).then(
    (c) => (c.end(), undefined),
    (e: PgError) => e,
  );
  t.equal(err?.code, '57P03', 'a writer through a waits and gets 57P03: no primary, and nobody promotes without etcd');
  for (const n of [pg2, pg3]) t.equal((await cluster.query(n, 'select pg_is_in_recovery() as r'))[0].r, true, `${n.name} was not promoted`);
  t.same(NAMES.filter((n) => instances[n].app.timeline.recent().some((e) => e.event.startsWith('failover.promote'))), [], 'no instance promoted');

  // An operator promotes pg3 by hand: one primary on a newer timeline, so every instance adopts it.
  await cluster.promote(pg3);
  await waitForClusterPrimary(trio, pg3);
  t.pass('every instance adopted pg3 (one primary, newer timeline) without etcd');

  // All at once: a member alone serves no client until a quorum of its cluster is back.
  await Promise.all([0, 1, 2].map((i) => etcd.startMember(i)));
  await waitFor('every instance rejoined', () => NAMES.every((n) => etcdReachable(trio, n) === true), 30_000);
  await waitFor('the cluster state follows pg3', async () => (await trio.state())?.primary === 'pg3', 30_000);
  for (const n of NAMES) t.ok(instances[n].app.timeline.recent().some((e) => e.event === 'coordination.etcd_back'), `${n} says it rejoined`);
  t.equal((await cluster.query(pg2, 'select pg_is_in_recovery() as r'))[0].r, true, 'pg2 was never promoted');
});

t.test('one instance cut from etcd keeps its primary, never promotes, and follows the promotion the others made', { skip: skip ?? cutUnavailableReason() }, async (t) => {
  const trio = await startTrio(t, { failover: FAILOVER });
  const { cluster, etcd, instances } = trio;
  const [pg1] = cluster.nodes;
  await waitForClusterPrimary(trio, pg1);
  await waitFor('the cluster state names pg1', async () => (await trio.state())?.primary === 'pg1');
  const rules = etcd.members.map((m) => ['OUTPUT', '-p', 'tcp', '-d', ADDRESS.c, '--dport', String(m.clientPort), '-j', 'REJECT', '--reject-with', 'tcp-reset']);
  for (const r of rules) spawnSync('iptables', ['-I', ...r]);
  const undo = () => rules.forEach((r) => spawnSync('iptables', ['-D', ...r]));
  t.teardown(undo);
  process.once('exit', undo);

  await waitFor('c finds etcd out of reach', () => etcdReachable(trio, 'c') === false, 20_000);
  t.equal(etcdReachable(trio, 'a'), true, 'a still reaches etcd');
  t.same(await whoAnswers(instances.c.rwPort), { port: pg1.port, inRecovery: false }, 'c keeps routing writes to pg1');
  t.match(instances.c.app.status().coordination, { etcd: { reachable: false } }, "c's /status says etcd is out of reach");

  await cluster.kill9(pg1);
  await waitFor('a and b promoted a replica', async () => {
    const s = await trio.state();
    return s?.phase === 'stable' && s.primary !== undefined && s.primary !== 'pg1';
  }, 60_000);
  await waitFor('a routes to the promoted replica', () => instances.a.app.topology.primary() !== undefined);
  const target = cluster.nodes.find((n) => n.name === instances.a.app.topology.primary()!.name)!;
  await waitFor(`c, cut from etcd, follows ${target.name} (the one primary on a newer timeline)`, () => instances.c.app.topology.primary()?.name === target.name, 30_000);
  t.same(await whoAnswers(instances.c.rwPort), { port: target.port, inRecovery: false }, `writes through c reach ${target.name}`);
  t.same(instances.c.app.timeline.recent().filter((e) => e.event.startsWith('failover.promote')), [], 'c promoted nothing');

  undo();
  await waitFor('c rejoins', () => etcdReachable(trio, 'c') === true, 30_000);
});

t.test('a leader stopped (SIGSTOP) past its lease does not act on stale leadership when it wakes', { skip }, async (t) => {
  const etcd = await startEtcd(t, { members: 3, clientAddresses: ['127.0.0.1', ...Object.values(ADDRESS)] });
  const cluster = await startCluster3(t);
  const [pg1] = cluster.nodes;
  // c runs as its own process, alone at first so that it takes the leader key.
  const dir = mkdtempSync(path.join(tmpdir(), 'pgwarden-stall-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'c.yaml');
  const ports = { rw: await freePort(), ro: await freePort(), admin: await freePort() };
  writeFileSync(file, instanceYaml('c', cluster, etcd, ports));
  const child = spawn(process.execPath, [CLI, '--config', file], { env: { ...process.env, TEST_CHECK_PASSWORD: CHECK_USER.password }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  t.teardown(() => {
    child.kill('SIGCONT');
    child.kill('SIGKILL');
  });
  const { Etcd3 } = await import('etcd3');
  const kv = new Etcd3({ hosts: etcd.endpoints() });
  t.teardown(() => kv.close());
  const leader = () => kv.get(`${PREFIX}/leader`).string();
  const state = async () => JSON.parse((await kv.get(`${PREFIX}/state`).string()) ?? 'null');
  await waitFor('c leads and published pg1', async () => (await leader()) === 'c' && (await state())?.primary === 'pg1', 30_000);
  const a = await startInstance(t, 'a', cluster, etcd);
  const b = await startInstance(t, 'b', cluster, etcd);
  await waitFor('a and b route writes to pg1', () => a.app.topology.primary()?.name === 'pg1' && b.app.topology.primary()?.name === 'pg1');

  child.kill('SIGSTOP');
  const stoppedAt = (await state()).at as number;
  await waitFor('the leader key moved to a or b (c\'s lease expired)', async () => ['a', 'b'].includes((await leader()) ?? ''), 30_000);
  await cluster.kill9(pg1);
  await waitFor('a replica is the cluster primary', async () => {
    const s = await state();
    return s?.phase === 'stable' && s.primary !== undefined && s.primary !== 'pg1';
  }, 60_000);
  const agreed = (await state()).primary as string;
  const wokeAt = Date.now();
  child.kill('SIGCONT');
  // c wakes with an old read and leadership it no longer has; its lease deadline has passed.
  await waitFor('c rejoins (its /status answers with etcd reachable)', async () => {
    const r = await fetch(`http://127.0.0.1:${ports.admin}/status`);
    const s = (await r.json()) as { coordination?: { etcd: { reachable: boolean }; isLeader: boolean } };
    return s.coordination?.etcd.reachable === true;
  }, 30_000);
  await waitFor(`c routes writes to ${agreed}`, async () => (await whoAnswers(ports.rw)).port === cluster.nodes.find((n) => n.name === agreed)!.port, 30_000);
  const s = await state();
  t.equal(s.primary, agreed, 'the state still names the primary the new leader published');
  t.notOk(s.by === 'c' && s.at > stoppedAt, 'c wrote no state after it was stopped');
  const lines = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { event?: string; time?: number | string });
  const acted = lines.filter((l) => ['failover.promote', 'failover.quorum', 'coordination.state'].includes(String(l.event)) && new Date(l.time as string | number).getTime() >= wokeAt);
  t.same(acted, [], 'c began no promotion and published nothing after it woke');
  const promotedCount = (await Promise.all(cluster.replicas.map(async (n) => (await cluster.query(n, 'select pg_is_in_recovery() as r'))[0].r === false))).filter(Boolean).length;
  t.equal(promotedCount, 1, 'exactly one replica was promoted');
});

t.test('a promotion left half-done by a dead leader is finished by the next leader with the same candidate', { skip }, async (t) => {
  const etcd = await startEtcd(t, { members: 3, clientAddresses: ['127.0.0.1', ...Object.values(ADDRESS)] });
  const cluster = await startCluster3(t);
  const [pg1, pg2, pg3] = cluster.nodes;
  const { Etcd3 } = await import('etcd3');
  const kv = new Etcd3({ hosts: etcd.endpoints() });
  t.teardown(() => kv.close());
  // What a leader leaves when it is killed after every member acknowledged "no primary" and
  // before pg_promote(): epoch 2, phase failover, candidate pg3 (pg2 is as good a choice: the
  // next leader must not pick again).
  await cluster.kill9(pg1);
  await kv.put(`${PREFIX}/state`).value(JSON.stringify({ epoch: 2, phase: 'failover', old: 'pg1', candidate: 'pg3', fenced: [], by: 'x', at: Date.now() }));
  const a = await startInstance(t, 'a', cluster, etcd);
  const b = await startInstance(t, 'b', cluster, etcd);
  await waitFor('the cluster state names pg3 as primary', async () => JSON.parse((await kv.get(`${PREFIX}/state`).string())!).primary === 'pg3', 60_000);
  await waitFor('a and b route writes to pg3', () => a.app.topology.primary()?.name === 'pg3' && b.app.topology.primary()?.name === 'pg3');
  t.equal((await cluster.query(pg2, 'select pg_is_in_recovery() as r'))[0].r, true, 'pg2 was not promoted');
  t.equal((await cluster.query(pg3, 'select pg_is_in_recovery() as r'))[0].r, false, 'pg3, the candidate the dead leader chose, was promoted');
  t.same(await whoAnswers(a.rwPort), { port: pg3.port, inRecovery: false }, 'writes through a reach pg3');
});
