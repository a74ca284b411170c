// Several instances as one (issue "coordination through etcd", points 1 and 3): with a real
// 3-member etcd, three pgwarden instances in promote mode and a real primary with two streaming
// replicas, a kill -9 of the primary leads to exactly one promotion, by the leader, after a
// quorum voted; every instance then routes writes to the same new server.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { etcdAvailable } from '../helpers/etcd';
import { NAMES, startTrio, waitForClusterPrimary } from '../helpers/coordinated';
import { waitFor, whoAnswers } from '../helpers/proxy';

const skip = etcdAvailable();
if (skip) t.comment(`skipped: ${skip}`);

t.test('kill -9 of the primary: one promotion by the leader, one view on every instance', { skip }, async (t) => {
  // Every instance has the same hooks; the cluster-wide ones must run once, on the leader.
  const dir = mkdtempSync(path.join(tmpdir(), 'pgwarden-hooks-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const record = path.join(dir, 'runs');
  const hook = (event: string) => `  ${event}:\n    - command: [sh, -c, 'echo "${event} $PGWARDEN_NEW_PRIMARY_NAME" >> ${record}']`;
  const trio = await startTrio(t, { extra: `hooks:\n${hook('on_promote')}\n${hook('on_primary_change')}` });
  const { cluster, instances } = trio;
  const [pg1] = cluster.nodes;
  await waitForClusterPrimary(trio, pg1);
  await waitFor('the cluster state names pg1 at epoch 1', async () => (await trio.state())?.primary === 'pg1');
  const leader = await trio.kv.get('/pgwarden/test/leader').string();
  t.ok(leader !== null && (NAMES as readonly string[]).includes(leader), `one leader: ${leader}`);

  await cluster.kill9(pg1);
  await waitFor('a replica is the cluster primary', async () => {
    const s = await trio.state();
    return s?.phase === 'stable' && s.primary !== undefined && s.primary !== 'pg1';
  }, 60_000);
  const state = (await trio.state())!;
  const promoted = cluster.nodes.find((n) => n.name === state.primary)!;
  await waitForClusterPrimary(trio, promoted);

  // Exactly one server was promoted: the other replica is still in recovery.
  const other = cluster.replicas.find((n) => n !== promoted)!;
  t.equal((await cluster.query(other, 'select pg_is_in_recovery() as r'))[0].r, true, `${other.name} is still a replica`);
  t.equal((await cluster.query(promoted, 'select pg_is_in_recovery() as r'))[0].r, false, `${promoted.name} is the primary`);
  const promotions = NAMES.flatMap((n) => instances[n].app.timeline.recent().filter((e) => e.event === 'failover.promoted').map(() => n));
  t.equal(promotions.length, 1, `one instance promoted (${promotions.join(', ')})`);
  const votes = NAMES.filter((n) => instances[n].app.timeline.recent().some((e) => e.event === 'coordination.vote'));
  t.ok(votes.length >= 2, `a quorum voted before the promotion (${votes.join(', ')})`);

  for (const n of NAMES) {
    const who = await whoAnswers(instances[n].rwPort);
    t.same(who, { port: promoted.port, inRecovery: false }, `writes through ${n} reach ${promoted.name}`);
    t.equal(instances[n].app.status().coordination?.primary, promoted.name, `${n}'s /status names ${promoted.name}`);
  }
  // stop() waits for hook runs still queued, so the record is final.
  for (const n of NAMES) await instances[n].app.stop(0);
  const runs = readFileSync(record, 'utf8').trim().split('\n').sort();
  t.same(runs, [`on_primary_change ${promoted.name}`, `on_promote ${promoted.name}`], 'on_promote and on_primary_change ran once for the cluster, not once per instance');
});
