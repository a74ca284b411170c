// A server that accepts the TCP connection and hangs up before answering the startup (a server
// dying under the session) is treated like a refused connect: the session moves on to the next
// candidate, and when there is none it waits and finally gets an ErrorResponse — never a bare
// close. A real PostgreSQL server does not hang up on purpose, so a small TCP server plays it.
import net from 'node:net';
import t from 'tap';
import type { PgCluster } from '../../src/harness/cluster';
import { errorFields, rawExchange, startProxy, waitForBackend } from '../helpers/proxy';

t.test('a backend that hangs up before answering: redispatch, then 57P03 — never a bare close', async (t) => {
  const server = net.createServer((s) => {
    s.on('error', () => undefined);
    s.once('data', () => s.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const port = (server.address() as net.AddressInfo).port;
  const noCluster = { nodes: [] } as unknown as PgCluster;
  const p = await startProxy(t, noCluster, {
    backends: () => `  - { name: hangup, host: 127.0.0.1, port: ${port}, role: primary }`,
    health: '  check: tcp\n  interval: 300ms\n  fast_interval: 100ms',
    failover: '  queue_timeout: 2s\n  queue_size: 10',
  });
  await waitForBackend(p, 'hangup', 'up');
  const startup = Buffer.alloc(8 + 'user\0postgres\0\0'.length);
  startup.writeInt32BE(startup.length, 0);
  startup.writeInt32BE(196608, 4);
  startup.write('user\0postgres\0\0', 8, 'latin1');
  const answer = await rawExchange(p.rwPort, startup);
  t.match(errorFields(answer), { C: '57P03', M: /listener rw.*queue_timeout/ });
  t.ok(
    p.logs.some((l) => l.event === 'backend.connect_failed' && /closed the connection before answering/.test(String(l.err))),
    'each hang-up was logged as a failed connect and retried',
  );
});
