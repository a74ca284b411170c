// A server that accepts the TCP connection and closes it before answering the startup: the
// client still gets a PostgreSQL ErrorResponse (08006), never a bare close. A real PostgreSQL
// server does not do this on purpose, so a one-line TCP server plays it (a protocol edge case).
import net from 'node:net';
import t from 'tap';
import type { PgCluster } from '../../src/pg/cluster';
import { errorFields, rawExchange, startProxy, waitForBackend } from '../helpers/proxy';

t.test('a backend that hangs up before answering: the client gets 08006', async (t) => {
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
  });
  await waitForBackend(p, 'hangup', 'up');
  const startup = Buffer.alloc(8 + 'user\0postgres\0\0'.length);
  startup.writeInt32BE(startup.length, 0);
  startup.writeInt32BE(196608, 4);
  startup.write('user\0postgres\0\0', 8, 'latin1');
  const answer = await rawExchange(p.rwPort, startup);
  t.match(errorFields(answer), { C: '08006', M: /server hangup closed the connection before answering/ });
});
