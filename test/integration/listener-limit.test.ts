// A listener's max_connections: the client beyond it gets 53300 from pgwarden at once, and the
// sessions already open are not touched — they keep working, and a slot that frees up is
// taken by the next client.
import t from 'tap';
import type { Client } from 'pg';
import { startCluster } from '../helpers/cluster';
import { connect, startProxy, waitFor, waitForBackend } from '../helpers/proxy';

t.test('more clients than max_connections: 53300 for the extra one, the others keep working', async (t) => {
  const cluster = await startCluster(t, { replicas: 0 });
  const [pg1] = cluster.nodes;
  const p = await startProxy(t, cluster, {
    listeners: (rw, ro) => `  - { name: rw, bind: "127.0.0.1:${rw}", route: primary, max_connections: 3 }
  - { name: ro, bind: "127.0.0.1:${ro}", route: replica }`,
    health: `  check: tcp\n  interval: 300ms`,
    backends: () => `  - { name: pg1, host: 127.0.0.1, port: ${pg1!.port}, role: primary }`,
  });
  await waitForBackend(p, 'pg1', 'up');
  const held: Client[] = [];
  t.teardown(() => Promise.all(held.map((c) => c.end().catch(() => undefined))));
  for (let i = 0; i < 3; i++) held.push(await connect(p.rwPort));
  await held[0]!.query('begin');
  await held[0]!.query('create temp table inside (id int)');

  for (let i = 0; i < 2; i++) {
    const err = await connect(p.rwPort).then(() => 'connected', (e) => e);
    t.match(err, { code: '53300', message: 'too many client connections on listener rw (max_connections 3)' }, `extra client ${i + 1} refused at once`);
  }
  await held[0]!.query('insert into inside values (1)');
  t.same((await held[0]!.query('select count(*)::int as n from inside')).rows, [{ n: 1 }], 'a transaction open across the refusals goes on');
  await held[0]!.query('commit');
  for (const c of held) t.equal((await c.query('select inet_server_port() as port')).rows[0].port, pg1!.port);
  t.ok(p.logs.some((l) => l.event === 'session.error' && l.code === 'PGW_TOO_MANY_CLIENTS'), 'the refusal is logged with its code');

  await held.shift()!.end();
  await waitFor('the listener has room again', () => p.app.listener('rw').sessions.size < 3);
  held.push(await connect(p.rwPort));
  t.equal((await held[2]!.query('select 1 as one')).rows[0].one, 1, 'a freed slot is taken by the next client');
});
