// Following an external promotion (issue 18) against real PostgreSQL: kill -9 of the primary,
// `pg_ctl promote` of the replica from outside (as Patroni or an operator would), and a writer
// that was waiting in the queue lands on the new primary. While there is no primary the replica
// is role polled on its kept check connection (failover.watch_interval), and the polls stop once
// the new primary is known. The role poll itself (an empty query answered with in_hot_standby on
// PostgreSQL 14+) is checked on a probe of its own across the promotion. Events and deadlines
// only: how fast this is belongs in bench/failover.js.
import t from 'tap';
import { postgresProbe } from '../../src/health/postgres-probe';
import type { ProbeResult } from '../../src/health/types';
import { startCluster } from '../helpers/cluster';
import { CHECK_USER, startProxy, waitFor, waitForBackend, whoAnswers } from '../helpers/proxy';
import { logLines } from '../helpers/failover';

t.test('a writer waiting for a primary is served by the replica promoted from outside', async (t) => {
  const cluster = await startCluster(t, { replicas: 1, checkUser: CHECK_USER });
  const [pg1, pg2] = cluster.nodes;
  const p = await startProxy(t, cluster, { failover: '  queue_timeout: 30s\n  queue_size: 100\n  watch_interval: 50ms' });
  const polls: Array<{ backend: string; result: ProbeResult; checkNow: boolean }> = [];
  p.app.bus.on('poll', (e) => polls.push(e));
  await waitForBackend(p, 'pg1', 'up');
  await waitForBackend(p, 'pg2', 'up');
  await waitFor('pg1 is the primary and the watch is off', () => p.app.topology.primary()?.name === 'pg1' && lastWatch(p) === null);
  polls.length = 0; // pg2 may have been polled at startup, before pg1's first check answered

  // A probe of our own on pg2, to see the role poll answer across the promotion.
  const probe = postgresProbe({ host: '127.0.0.1', port: pg2.port, user: CHECK_USER.name, password: CHECK_USER.password, database: 'postgres', timeoutMs: 5000 });
  t.teardown(() => probe.close?.());
  const signal = new AbortController().signal;
  t.match(await probe.poll!(signal), { ok: false, message: /no kept check connection/ }, 'nothing to poll on before the first check');
  t.match(await probe(signal), { ok: true, role: 'replica' });
  t.match(await probe.poll!(signal), { ok: true, role: 'replica' }, 'a replica polls as a replica');

  await cluster.kill9(pg1);
  await waitForBackend(p, 'pg1', 'down');
  await waitFor('pg2 role polled during the gap', () => polls.some((e) => e.backend === 'pg2' && e.result.ok && e.result.role === 'replica'));
  t.equal(lastWatch(p), 50, 'the watch is on');

  const writer = whoAnswers(p.rwPort);
  await waitFor('the writer waits in the queue', () => queued(p) === 1);
  await cluster.promote(pg2);
  t.same(await writer, { port: pg2.port, inRecovery: false }, 'the queued writer reached the promoted server');
  t.equal(p.app.topology.primary()?.name, 'pg2');

  t.match(await probe.poll!(signal), { ok: true, role: 'primary' }, 'the kept connection polls as a primary after the promotion');
  const check = await probe(signal);
  t.match(check, { ok: true, role: 'primary' });
  t.ok(check.ok && (check.timeline ?? 0) >= 2, 'on a new timeline');

  await waitFor('the watch is off again', () => lastWatch(p) === null);
  t.ok(polls.every((e) => e.backend === 'pg2'), 'only the healthy replica was polled, never the dead primary');
});

/** intervalMs of the last failover.watch log line: a number while watching, null once off. */
function lastWatch(p: Awaited<ReturnType<typeof startProxy>>): number | null | undefined {
  return logLines(p, 'failover.watch').at(-1)?.intervalMs as number | null | undefined;
}

function queued(p: Awaited<ReturnType<typeof startProxy>>): number {
  return (p.app.listener('rw') as unknown as { ctx: { router: { queued: number } } }).ctx.router.queued;
}
