// Several instances as one (issue "coordination through etcd", points 1 and 2), with real cuts:
// each in-process instance reaches the servers through its own loopback address, and an
// iptables REJECT on that destination cuts one instance from one server while the others still
// reach it (root only; skipped with a printed reason otherwise).
// - One instance cut from the primary: it votes, but one vote is no quorum: no promotion; its
//   write clients wait and get 57P03 at queue_timeout, and it reports not ready.
// - Two of three cut from a primary that is alive: a quorum, so the leader promotes; the
//   instance that still reaches the old primary has closed its sessions there and acknowledged
//   the epoch before the promotion: no write through it lands on the old primary afterwards.
import t from 'tap';
import type { Client } from 'pg';
import { etcdAvailable } from '../helpers/etcd';
import { ADDRESS, NAMES, cut, cutUnavailableReason, startTrio, waitForClusterPrimary } from '../helpers/coordinated';
import { connect, waitFor, whoAnswers } from '../helpers/proxy';
import type { PgError } from '../helpers/failover';

const skip = etcdAvailable() ?? cutUnavailableReason();
if (skip) t.comment(`skipped: ${skip}`);

t.test('one instance cut from the primary: no promotion, its writers wait, then 57P03', { skip }, async (t) => {
  const trio = await startTrio(t, { failover: '  queue_timeout: 3s\n  mode: promote\n  promote_after: 1s' });
  const { cluster, instances } = trio;
  const [pg1, pg2, pg3] = cluster.nodes;
  await waitForClusterPrimary(trio, pg1);
  await waitFor('the cluster state names pg1', async () => (await trio.state())?.primary === 'pg1');

  const uncut = cut(t, ADDRESS.c, pg1.port);
  await waitFor('c votes pg1 down', async () => (await trio.kv.get('/pgwarden/test/votes/c').string()) !== null, 30_000);
  t.equal(instances.c.app.ready(), false, 'c reports not ready (/readyz)');
  const err = await connect(instances.c.rwPort).then(
    (c) => (c.end(), undefined),
    (e: PgError) => e,
  );
  t.equal(err?.code, '57P03', `a writer through c waited and got 57P03 at queue_timeout (${err?.message})`);
  // Well past promote_after + queue_timeout: one vote is still no quorum.
  const s = (await trio.state())!;
  t.match(s, { epoch: 1, phase: 'stable', primary: 'pg1' }, 'the cluster still agrees on pg1 at epoch 1');
  for (const n of [pg2, pg3]) t.equal((await cluster.query(n, 'select pg_is_in_recovery() as r'))[0].r, true, `${n.name} was not promoted`);
  for (const n of ['a', 'b'] as const) t.same(await whoAnswers(instances[n].rwPort), { port: pg1.port, inRecovery: false }, `writes through ${n} still reach pg1`);

  uncut();
  await waitFor('c routes writes to pg1 again', () => instances.c.app.topology.primary()?.name === 'pg1');
  await waitFor('c withdrew its vote', async () => (await trio.kv.get('/pgwarden/test/votes/c').string()) === null);
  t.equal(instances.c.app.ready(), true, 'c is ready again');
});

t.test('two of three cut from a live primary: promotion, and the third acknowledges no write on the old primary after it', { skip }, async (t) => {
  const trio = await startTrio(t);
  const { cluster, instances } = trio;
  const [pg1] = cluster.nodes;
  await cluster.query(pg1, 'alter table writes add column at timestamptz default clock_timestamp()');
  await waitForClusterPrimary(trio, pg1);
  await waitFor('the cluster state names pg1', async () => (await trio.state())?.primary === 'pg1');

  // A writer through c, one statement at a time on one session, reconnecting after an error.
  const acked: { id: number; port: number }[] = [];
  let stop = false;
  let id = 0;
  const writer = (async () => {
    let client: Client | undefined;
    while (!stop) {
      try {
        client ??= await connect(instances.c.rwPort);
        const r = await client.query(`insert into writes (id, via) values ($1, 'c') returning inet_server_port() as port`, [++id]);
        acked.push({ id, port: Number(r.rows[0].port) });
      } catch {
        await client?.end().catch(() => undefined);
        client = undefined;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    await client?.end().catch(() => undefined);
  })();
  await waitFor('c has written to pg1', () => acked.some((a) => a.port === pg1.port));

  cut(t, ADDRESS.a, pg1.port);
  cut(t, ADDRESS.b, pg1.port);
  await waitFor('a replica is the cluster primary', async () => {
    const s = await trio.state();
    return s?.phase === 'stable' && s.primary !== undefined && s.primary !== 'pg1';
  }, 60_000);
  const s = (await trio.state())!;
  const target = cluster.nodes.find((n) => n.name === s.primary)!;
  await waitForClusterPrimary(trio, target);
  await waitFor(`c has written to ${target.name}`, () => acked.some((a) => a.port === target.port));
  stop = true;
  await writer;

  const promoteAt = NAMES.flatMap((n) => instances[n].app.timeline.recent().filter((e) => e.event === 'failover.promote')).map((e) => Date.parse(e.time));
  t.equal(promoteAt.length, 1, 'one promotion');
  const onOld = await cluster.query(pg1, `select max(id) as id, max(at) as at from writes where via = 'c'`);
  t.ok(onOld[0].at !== null && new Date(onOld[0].at).getTime() < promoteAt[0]!, `every write c put on pg1 was made before the leader began promoting (${new Date(onOld[0].at).toISOString()} < ${new Date(promoteAt[0]!).toISOString()})`);
  const firstNew = acked.findIndex((a) => a.port === target.port);
  t.same(acked.slice(firstNew).filter((a) => a.port !== target.port), [], `after its first write on ${target.name}, c acknowledged no write elsewhere`);
  t.equal((await cluster.query(pg1, 'select pg_is_in_recovery() as r'))[0].r, false, 'pg1 is still a primary (alive, cut from a and b only)');
  await waitFor('c fences pg1', () => instances.c.app.topology.get('pg1')?.fenced === true);
  t.ok(instances.c.app.topology.get('pg1')?.fenced, 'c, which still reaches pg1, fences it');
});
