// Who promotes a replica when the primary dies (GitHub issue "Failover", item 5). `follow`
// (the default) never does: pgwarden only routes to whichever server says it is primary.
// `promote` does, after promote_after, choosing the replica that replayed the most WAL and never
// one further behind than max_lag_on_failover; writers wait in the queue meanwhile.
import t from 'tap';
import { startCluster } from '../helpers/cluster';
import { CHECK_USER, connect, startProxy, waitFor, waitForBackend, type RunningProxy } from '../helpers/proxy';
import { logLines, pauseReplay, timelineEvents, writeWal, type PgError } from '../helpers/failover';
import type { PgCluster, PgNode } from '../../src/harness/cluster';

const GRANT_PROMOTE = 'grant execute on function pg_promote(boolean, integer) to pgwarden';
const ON_PRIMARY_CHANGE = `hooks:
  on_primary_change:
    - command: [sh, -c, 'echo "$PGWARDEN_OLD_PRIMARY_NAME → $PGWARDEN_NEW_PRIMARY_NAME"']`;

t.test('two replicas', async (t) => {
  const cluster = await startCluster(t, { replicas: 2, checkUser: CHECK_USER });
  const [pg1, pg2, pg3] = cluster.nodes;
  // The check user could promote; only the mode decides whether pgwarden does.
  await cluster.query(pg1, GRANT_PROMOTE);
  await cluster.query(pg1, 'create table writes (id int)');
  await cluster.waitForReplication();

  t.test('follow mode never promotes', async (t) => {
    const p = await startProxy(t, cluster, { failover: '  queue_timeout: 20s\n  mode: follow\n  promote_after: 1s', extra: ON_PRIMARY_CHANGE });
    for (const n of cluster.nodes) await waitForBackend(p, n.name, 'up');
    await cluster.kill9(pg1);
    await waitForBackend(p, 'pg1', 'down');
    // Well past promote_after: ten good checks of each replica after the primary was lost.
    const good = countGoodChecks(p, ['pg2', 'pg3']);
    await waitFor('10 good checks of pg2 and of pg3', () => good.pg2 >= 10 && good.pg3 >= 10, 30_000);
    for (const n of [pg2, pg3]) t.equal(await inRecovery(cluster, n), true, `${n.name} is still in recovery`);
    t.equal(p.app.topology.primary(), undefined, 'pgwarden sees no primary');
    t.same(p.app.timeline.recent().filter((e) => e.event.startsWith('failover.')), [], 'no failover.* event');

    await cluster.start(pg1);
    await waitForBackend(p, 'pg1', 'up');
    await waitFor('pg1 is the primary again', () => p.app.topology.primary()?.name === 'pg1');
    await cluster.waitForReplication();
    await p.app.stop(0); // waits for any hook run still queued, so the count is final
    t.same(logLines(p, 'hook.run'), [], 'the same primary back after the gap is no change: on_primary_change did not run');
  });

  t.test('promote mode promotes the replica that replayed the most; a waiting writer lands on it', async (t) => {
    // promote_after leaves the writer below, which connects as soon as pg1 is seen down, two
    // seconds to reach the queue even on a loaded machine (it runs in this same process).
    const p = await startProxy(t, cluster, { failover: '  queue_timeout: 30s\n  mode: promote\n  promote_after: 2s\n  max_lag_on_failover: 16MB', extra: ON_PRIMARY_CHANGE });
    for (const n of cluster.nodes) await waitForBackend(p, n.name, 'up');
    // pg3 stops replaying; pg2 goes on, so pg2 is ahead (both well within max_lag_on_failover).
    await pauseReplay(cluster, pg3);
    await cluster.query(pg1, 'insert into writes select generate_series(1, 1000)');
    await waitFor('pgwarden sees pg2 ahead of pg3', () => {
      const a = p.app.topology.get('pg2')?.replayLsn;
      const b = p.app.topology.get('pg3')?.replayLsn;
      return a !== undefined && b !== undefined && a > b;
    });
    const served: number[] = [];
    p.app.bus.on('session.dequeued', (e) => e.listener === 'rw' && e.outcome === 'served' && served.push(e.waitMs));

    const killed = cluster.kill9(pg1);
    await waitForBackend(p, 'pg1', 'down');
    t.equal(p.app.topology.primary(), undefined, 'no primary: the next writer has to wait');
    const writer = (async () => {
      const c = await connect(p.rwPort);
      try {
        const r = await c.query('insert into writes values (-1) returning inet_server_port() as port, pg_is_in_recovery() as rec');
        return { port: Number(r.rows[0].port), inRecovery: r.rows[0].rec as boolean };
      } finally {
        await c.end();
      }
    })();
    await killed;

    t.same(await writer, { port: pg2.port, inRecovery: false }, 'the waiting writer reached pg2, and its write succeeded');
    t.equal(served.length, 1, 'it waited in the queue and was served');
    t.equal(p.app.topology.primary()?.name, 'pg2', 'pg2 is the primary');
    t.equal(await inRecovery(cluster, pg3), true, 'pg3 (behind) was not promoted');
    t.match(timelineEvents(p, 'failover.promote'), [{ level: 'warn', backend: 'pg2', message: /^promoting pg2 / }]);
    // The checks may see pg2 as primary (and serve the writer) before pg_promote() has returned
    // to pgwarden, which records failover.promoted only then.
    await waitFor('failover.promoted in the timeline', () => timelineEvents(p, 'failover.promoted').length > 0);
    t.match(timelineEvents(p, 'failover.promoted'), [{ backend: 'pg2' }]);
    t.equal(logLines(p, 'failover.promote').length, 1, 'failover.promote is logged');
    const rows = await cluster.query(pg2, 'select count(*)::int as n from writes where id = -1');
    t.equal(rows[0].n, 1, 'the write is on pg2');

    await waitFor('the on_primary_change hook has run', () => logLines(p, 'hook.run').some((l) => l.hook === 'on_primary_change'));
    await p.app.stop(0); // waits for any hook run still queued, so the count is final
    t.same(logLines(p, 'hook.run').map((l) => [l.hook, l.outcome]), [['on_primary_change', 'ok']], 'on_primary_change ran once after pgwarden promoted pg2');
    t.same(logLines(p, 'hook.output').map((l) => l.line), ['pg1 → pg2'], 'with the lost primary as the old one');
  });
});

t.test('promote mode: no replica within max_lag_on_failover', async (t) => {
  const cluster = await startCluster(t, { replicas: 1, checkUser: CHECK_USER });
  const [pg1, pg2] = cluster.nodes;
  await cluster.query(pg1, GRANT_PROMOTE);
  await cluster.waitForReplication();
  const p = await startProxy(t, cluster, { failover: '  queue_timeout: 4s\n  mode: promote\n  promote_after: 1s\n  max_lag_on_failover: 1MB' });
  for (const n of cluster.nodes) await waitForBackend(p, n.name, 'up');

  await pauseReplay(cluster, pg2);
  await writeWal(cluster, pg1, 3);
  await waitFor('pgwarden sees pg2 more than 1MB behind pg1', () => (p.app.topology.get('pg2')?.lagBytes ?? 0) > 1024 * 1024);
  await cluster.kill9(pg1);
  await waitForBackend(p, 'pg1', 'down');
  const writer = connect(p.rwPort).then(
    async (c) => {
      await c.end();
      return 'connected';
    },
    (e: PgError) => e,
  );
  await waitFor('failover.no_candidate', () => timelineEvents(p, 'failover.no_candidate').length > 0);
  t.match(timelineEvents(p, 'failover.no_candidate'), [{ level: 'error', message: /no replica can be promoted .*max_lag_on_failover 1048576 bytes of pg1/ }]);
  t.same(timelineEvents(p, 'failover.promote'), [], 'nothing was promoted');
  t.match(await writer, { code: '57P03', message: /no primary available for listener rw/ }, 'the writer waited, then got 57P03');
  t.equal(await inRecovery(cluster, pg2), true, 'pg2 is still in recovery');
});

function inRecovery(cluster: PgCluster, node: PgNode): Promise<boolean> {
  return cluster.query(node, 'select pg_is_in_recovery() as r').then((rows) => rows[0].r as boolean);
}

/** Live counts of successful health checks per backend, from now on. */
function countGoodChecks(p: RunningProxy, names: string[]): Record<string, number> {
  const counts: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
  p.app.bus.on('check', (e) => {
    if (e.result.ok && e.backend in counts) counts[e.backend]++;
  });
  return counts;
}
