// TLS passthrough: the client's TLS session ends at the PostgreSQL server, not at pgwarden.
// And tls.mode: disable, where pgwarden refuses TLS itself.
import { execFile } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';
import t from 'tap';
import { startCluster } from '../helpers/cluster';
import { CHECK_USER, connect, startProxy, waitFor, waitForBackend } from '../helpers/proxy';
import { cancelRequest } from '../../src/protocol/cancel';

const run = promisify(execFile);

t.test('tls', async (t) => {
  const cluster = await startCluster(t, { replicas: 1, ssl: true, checkUser: CHECK_USER });
  const [pg1, pg2] = cluster.nodes;
  const p = await startProxy(t, cluster);
  const plain = await startProxy(t, cluster, { extra: 'tls:\n  mode: disable' });
  for (const proxy of [p, plain]) for (const n of cluster.nodes) await waitForBackend(proxy, n.name, 'up');

  t.test('psql sslmode=require through passthrough is TLS to the server', async (t) => {
    const conninfo = `host=127.0.0.1 port=${p.rwPort} user=postgres dbname=postgres sslmode=require`;
    const { stdout } = await run('psql', [conninfo, '-X', '-Atc', 'select ssl, inet_server_port() from pg_stat_ssl, (select 1) x where pid = pg_backend_pid()'], { timeout: 20_000 });
    t.equal(stdout.trim(), `t|${pg1.port}`);
  });

  t.test('a TLS client through ro; its cancel (unknown key) reaches the right server', async (t) => {
    const c = await connect(p.roPort, { ssl: { rejectUnauthorized: false } });
    const row = (await c.query('select ssl from pg_stat_ssl where pid = pg_backend_pid()')).rows[0];
    t.equal(row.ssl, true, 'encrypted end to end');
    const pid = (c as unknown as { processID: number }).processID;
    const secret = (c as unknown as { secretKey: number }).secretKey;
    const sleeping = c.query('select pg_sleep(30)').then(() => 'finished', (e: { code?: string }) => e.code);
    await waitFor('pg_sleep is running', async () => (await cluster.query(pg2, "select 1 from pg_stat_activity where pid = $1 and state = 'active'", [pid])).length === 1);
    await new Promise<void>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: p.roPort }, () => s.end(cancelRequest(pid, secret)));
      s.on('error', () => resolve());
      s.on('close', () => resolve());
    });
    t.equal(await sleeping, '57014', 'the cancel was broadcast to the backends of the listener');
    await c.end();
  });

  t.test('tls.mode disable: pgwarden answers N; sslmode=require fails, prefer works in plain text', async (t) => {
    const base = `host=127.0.0.1 port=${plain.rwPort} user=postgres dbname=postgres`;
    const req = await run('psql', [`${base} sslmode=require`, '-X', '-Atc', 'select 1'], { timeout: 20_000 }).then(() => 'connected', (e) => String(e.stderr));
    t.match(req, /server does not support SSL/);
    const { stdout } = await run('psql', [`${base} sslmode=prefer`, '-X', '-Atc', 'select ssl from pg_stat_ssl where pid = pg_backend_pid()'], { timeout: 20_000 });
    t.equal(stdout.trim(), 'f');
  });
});
