// A server that refuses a session with 57P03 before authentication (here: a replica in smart
// shutdown, which answers every new connection "the database system is shutting down") has
// said nothing the client must see: pgwarden retries the session elsewhere instead of passing
// the refusal on. The checks run once a minute, so pgwarden still routes to that replica and
// only the sessions' own attempts can find out.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { Client } from 'pg';
import { startCluster } from '../helpers/cluster';
import { CHECK_USER, connect, startProxy, waitFor, waitForBackend } from '../helpers/proxy';

t.test('57P03 at startup: the session goes to the other replica, the client sees no error', async (t) => {
  const cluster = await startCluster(t, { replicas: 2, checkUser: CHECK_USER });
  const [, stopping, healthy] = cluster.nodes;
  const p = await startProxy(t, cluster, {
    health: `  check: postgres
  user: ${CHECK_USER.name}
  password_env: TEST_CHECK_PASSWORD
  interval: 60s
  fast_interval: 60s
  down_interval: 60s
  timeout: 2s
  rise: 1
  fall: 3`,
  });
  for (const n of cluster.nodes) await waitForBackend(p, n.name, 'up', 30_000);

  // Smart shutdown (SIGTERM): the replica waits for this session to end and meanwhile refuses
  // every new connection with 57P03.
  const held = await connect(stopping.port);
  t.teardown(() => held.end().catch(() => undefined));
  const pid = Number(fs.readFileSync(path.join(stopping.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  process.kill(pid, 'SIGTERM');
  await waitFor('the replica refuses new connections', async () => {
    try {
      const c = await connect(stopping.port, { connectionTimeoutMillis: 2000 });
      await c.end();
      return false;
    } catch (e) {
      return (e as { code?: string }).code === '57P03';
    }
  });

  // Four sessions held open at once: roundrobin or leastconn, some are routed to the stopping
  // replica (still up for pgwarden) and must be retried on the healthy one.
  const clients: Client[] = [];
  t.teardown(() => Promise.all(clients.map((c) => c.end().catch(() => undefined))));
  for (let i = 0; i < 4; i++) clients.push(await connect(p.roPort));
  for (const c of clients) {
    const r = await c.query('select inet_server_port() as port');
    t.equal(Number(r.rows[0].port), healthy.port, 'served by the healthy replica');
  }
  const refusals = p.logs.filter((l) => l.event === 'backend.connect_failed' && l.backend === stopping.name && /57P03/.test(String(l.err)));
  t.ok(refusals.length > 0, `the stopping replica's 57P03 was retried elsewhere (${refusals.length} time(s)), not passed to a client`);
});
