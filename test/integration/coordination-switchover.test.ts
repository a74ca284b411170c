// Several instances as one (issue "coordination through etcd", point 4): a planned switchover
// asked on any member — here one that is not the leader — drains the old primary's sessions at
// transaction boundaries on every member before the promotion, and answers once the whole
// cluster has switched. pgbench (a new connection per transaction) through each of the three
// instances sees no failed transaction.
import t from 'tap';
import { etcdAvailable } from '../helpers/etcd';
import { NAMES, describeTrio, startTrio, waitForClusterPrimary } from '../helpers/coordinated';
import { pgbench } from '../helpers/pgbench';
import { waitFor, whoAnswers } from '../helpers/proxy';

const skip = etcdAvailable();
if (skip) t.comment(`skipped: ${skip}`);

t.test('switchover asked on a member that does not lead: zero failed transactions through all three instances', { skip }, async (t) => {
  const trio = await startTrio(t, { failover: '  queue_timeout: 30s\n  mode: promote\n  promote_after: 1s\n  drain_timeout: 10s' });
  const { cluster, instances } = trio;
  const [pg1, pg2] = cluster.nodes;
  await waitForClusterPrimary(trio, pg1);
  await waitFor('pg2 is a healthy replica everywhere', () => NAMES.every((n) => instances[n].app.topology.get('pg2')?.state === 'up'));
  await waitFor('a leader', async () => (await trio.kv.get('/pgwarden/test/leader').string()) !== null);
  const leader = (await trio.kv.get('/pgwarden/test/leader').string())!;
  const asker = NAMES.find((n) => n !== leader)!;
  const init = await pgbench(instances.a.rwPort, ['-i', '-s', '1', '-q']);
  t.equal(init.code, 0, 'pgbench -i through a', { output: init.output });

  const started = Date.now();
  const runs = NAMES.map((n) => pgbench(instances[n].rwPort, ['-C', '-c', '3', '-j', '3', '-T', '20', '-n']));
  await waitFor(
    'pgbench running for 5 s with committed transactions',
    async () => Date.now() - started >= 5000 && Number((await cluster.query(pg1, 'SELECT count(*) AS n FROM pgbench_history'))[0].n) > 100,
    25_000,
  );
  const result = await instances[asker].app.switchover('pg2');
  t.comment(`switchover asked on ${asker} (leader ${leader}): ${JSON.stringify(result)}`);
  t.match(result, { ok: true, from: 'pg1', to: 'pg2' }, `the switchover asked on ${asker} succeeded`);
  // It answered when the whole cluster had switched: every instance routes writes to pg2 now.
  for (const n of NAMES) t.equal(instances[n].app.topology.primary()?.name, 'pg2', `${n} routes writes to pg2 when the command answers`);
  if (NAMES.some((n) => instances[n].app.topology.primary()?.name !== 'pg2')) t.comment(await describeTrio(trio));

  let processed = 0;
  for (const [i, run] of runs.entries()) {
    const { code, output } = await run;
    const n = NAMES[i]!;
    t.equal(code, 0, `pgbench through ${n} exits 0`, { output });
    t.notMatch(output, /aborted/, `no client through ${n} aborted`);
    const failed = /number of failed transactions: (\d+)/.exec(output);
    if (failed) t.equal(Number(failed[1]), 0, `pgbench through ${n} reports 0 failed transactions`);
    processed += Number(/number of transactions actually processed: (\d+)/.exec(output)?.[1] ?? 0);
  }
  t.ok(processed > 0, `pgbench processed ${processed} transactions`);
  const [{ n }] = await cluster.query(pg2, 'SELECT count(*) AS n FROM pgbench_history');
  t.equal(Number(n), processed, 'every transaction the three pgbench runs counted is on the new primary');
  for (const name of NAMES) t.same(await whoAnswers(instances[name].rwPort), { port: pg2.port, inRecovery: false }, `writes through ${name} reach pg2`);
  const s = (await trio.state())!;
  t.match(s, { phase: 'stable', primary: 'pg2', result: { ok: true, to: 'pg2' } }, 'etcd records the switchover');
  const hooks = NAMES.filter((name) => instances[name].app.timeline.recent().some((e) => e.event === 'failover.promoted'));
  t.same(hooks, [leader], 'only the leader promoted');
});
