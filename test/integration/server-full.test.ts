// A server at max_connections: a client gets the server's own "too many clients already"
// (53300) through pgwarden, the sessions already open keep working, and a health check refused
// with 53300 is no verdict (L7FULL): the full server stays up, nothing is drained.
import t from 'tap';
import type { Client } from 'pg';
import { startCluster } from '../helpers/cluster';
import { CHECK_USER, connect, healthConfig, startProxy, waitFor, waitForBackend, whoAnswers } from '../helpers/proxy';
import type { ProbeResult } from '../../src/health/types';

t.test('max_connections reached: 53300 passed on as it is, the server stays up', async (t) => {
  // 8 slots, 3 of them kept for superusers: the check user (pg_monitor, not a superuser) gets in
  // only while more than 3 are free; the clients here are the superuser postgres.
  const cluster = await startCluster(t, { replicas: 0, checkUser: CHECK_USER, settings: { max_connections: '8', superuser_reserved_connections: '3' } });
  const [pg1] = cluster.nodes;
  // Generous check timeouts: on a loaded machine a check that times out twice in a row is a real
  // down (and drains the sessions this test holds); only a refusal with 53300 must not be one.
  const health = healthConfig().replace('timeout: 1s', 'timeout: 5s').replace('fall: 2', 'fall: 3');
  const p = await startProxy(t, cluster, { health });
  await waitForBackend(p, 'pg1', 'up');
  const results: ProbeResult[] = [];
  p.app.bus.on('check', ({ result }) => results.push(result));

  const held: Client[] = [];
  t.teardown(() => Promise.all(held.map((c) => c.end().catch(() => undefined))));
  let refusal: { code?: string; message?: string } | undefined;
  for (let i = 0; i < 20 && refusal === undefined; i++) {
    await connect(p.rwPort).then(
      (c) => held.push(c),
      (e: { code?: string; message?: string }) => (refusal = e),
    );
  }
  t.match(refusal, { code: '53300', message: /too many clients already/ }, "the server's own refusal reached the client");
  t.ok(held.length >= 1, `${held.length} sessions open when the server was full`);
  for (const c of held) t.equal((await c.query('select 1 as one')).rows[0].one, 1);
  t.pass('every open session keeps working');

  // The kept check connection is cut; with one slot free (fewer than the 3 reserved) its
  // reconnects are refused with 53300 for as long as the sessions stay.
  await held[0]!.query("select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'pgwarden-check'");
  const full = () => results.filter((r) => !r.ok && r.layer === 'L7FULL').length;
  await waitFor('more checks refused with 53300 than fall', () => full() > 3);
  t.equal(p.app.topology.get('pg1')!.state, 'up', 'the full server is still up');
  t.equal(p.app.topology.get('pg1')!.role, 'primary');
  t.match(p.app.status().backends[0]!.lastCheck, { ok: false, layer: 'L7FULL', message: /53300/ }, 'status shows why the check could not run');
  const downs = p.logs.filter((l) => l.event === 'backend.down');
  t.same(downs.filter((l) => /53300|L7FULL|too many/.test(String(l.reason ?? l.msg))), [], 'no refusal with 53300 marked the server down');
  t.notOk(downs.length > 0 || p.logs.some((l) => l.event === 'session.end' && l.cause === 'drained'), 'nothing marked down, nothing drained', { downs });
  for (const c of held.slice(1)) t.equal((await c.query('select 2 as two')).rows[0].two, 2);

  await Promise.all(held.splice(0).map((c) => c.end()));
  const before = results.length;
  await waitFor('a check succeeds once there is room', () => results.slice(before).some((r) => r.ok));
  t.same(await whoAnswers(p.rwPort), { port: pg1!.port, inRecovery: false }, 'and new sessions are served');
});
