// No primary: new write sessions wait in the bounded queue instead of failing, connect the
// moment a replica is promoted, and get 57P03 (with the reason) after queue_timeout.
import net from 'node:net';
import t from 'tap';
import { startCluster } from '../helpers/cluster';
import { CHECK_USER, connect, startProxy, waitFor, waitForBackend, whoAnswers } from '../helpers/proxy';

t.test('the queue while there is no primary', async (t) => {
  const cluster = await startCluster(t, { replicas: 1, checkUser: CHECK_USER });
  const [pg1, pg2] = cluster.nodes;
  const p = await startProxy(t, cluster, { failover: '  queue_timeout: 60s\n  queue_size: 100' });
  const short = await startProxy(t, cluster, { failover: '  queue_timeout: 1s\n  queue_size: 10' });
  // A queue of one that nobody times out of during the test: the full-queue check does not race
  // against queue_timeout.
  const full = await startProxy(t, cluster, { failover: '  queue_timeout: 60s\n  queue_size: 1' });
  for (const proxy of [p, short, full]) for (const n of cluster.nodes) await waitForBackend(proxy, n.name, 'up');

  t.test('a waiting client connects when a replica is promoted', async (t) => {
    await cluster.kill9(pg1);
    await waitForBackend(p, 'pg1', 'down');
    const waiting = whoAnswers(p.rwPort);
    await waitFor('the client is queued', () => p.app.listener('rw').sessions.size === 1 && queued(p) === 1);
    await cluster.promote(pg2);
    t.same(await waiting, { port: pg2.port, inRecovery: false }, 'the queued session reached the new primary');
    const c = await connect(p.rwPort);
    await c.query('create table after_failover (id int)');
    await c.end();
  });

  t.test('no primary within queue_timeout: 57P03 with the reason; a full queue: 53300 at once', async (t) => {
    await cluster.stop(pg2, 'immediate');
    await waitForBackend(short, 'pg2', 'down');
    await waitForBackend(full, 'pg2', 'down');
    // The queue of one is taken by a client that sends its startup packet and waits.
    const holder = net.connect({ host: '127.0.0.1', port: full.rwPort }, () => holder.write(startupPacket()));
    holder.on('error', () => undefined);
    t.teardown(() => holder.destroy());
    await waitFor('the first client is queued', () => queued(full) === 1);
    const second = await connect(full.rwPort).then(() => 'connected', (e) => e);
    t.match(second, { code: '53300', message: /too many clients waiting on listener rw \(queue_size 1\)/ });
    t.equal(queued(full), 1, 'the client already waiting keeps its place');
    t.notOk(holder.destroyed, 'and its connection');
    holder.destroy();
    await waitFor('the first client left the queue', () => queued(full) === 0);

    const err = await connect(short.rwPort).then(() => 'connected', (e) => e);
    t.match(err, { code: '57P03', message: /no primary available for listener rw: pg1 down \(L4 connection refused.*\), pg2 down/ });
  });
});

/** A protocol 3.0 StartupMessage for user postgres (protocol docs, "StartupMessage"). */
function startupPacket(): Buffer {
  const params = 'user\0postgres\0\0';
  const b = Buffer.alloc(8 + params.length);
  b.writeInt32BE(b.length, 0);
  b.writeInt32BE(196608, 4);
  b.write(params, 8, 'latin1');
  return b;
}

function queued(p: Awaited<ReturnType<typeof startProxy>>): number {
  return (p.app.listener('rw') as unknown as { ctx: { router: { queued: number } } }).ctx.router.queued;
}
