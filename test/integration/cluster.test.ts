// The cluster harness against real PostgreSQL servers: replication, the check user's scram
// authentication, stop/start, crash and promotion, TLS, and cleanup.
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, type ClientConfig } from 'pg';
import t from 'tap';
import { PgCluster } from '../../src/harness/cluster';
import { startCluster } from '../helpers/cluster';

const CHECK_USER = { name: 'pgwarden_check', password: 'check-secret-71ad' };

async function connectAndQuery(config: ClientConfig, sql: string): Promise<any[]> {
  const client = new Client({ host: '127.0.0.1', database: 'postgres', connectionTimeoutMillis: 10_000, ...config });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.query(sql)).rows;
  } finally {
    await client.end().catch(() => {});
  }
}

t.test('primary with two streaming replicas and a check user', async (t) => {
  const cluster = await startCluster(t, { replicas: 2, checkUser: CHECK_USER });
  const [pg1, pg2, pg3] = cluster.nodes;
  if (!pg1 || !pg2 || !pg3) throw new Error('expected three nodes');

  t.same(cluster.nodes.map((n) => n.name), ['pg1', 'pg2', 'pg3']);
  t.equal(cluster.primary, pg1);
  t.same(cluster.replicas, [pg2, pg3]);
  t.equal(new Set(cluster.nodes.map((n) => n.port)).size, 3, 'every node has its own port');
  for (const node of cluster.nodes) {
    t.ok(node.port >= 20000 && node.port < 32000, `${node.name} port ${node.port} is below the ephemeral range`);
    t.equal(node.host, '127.0.0.1');
  }

  t.test('replicas stream from the primary under their own names', async (t) => {
    const rows = await cluster.query(pg1, "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming' ORDER BY 1");
    t.same(rows.map((r) => r.application_name), ['pg2', 'pg3']);
    for (const replica of cluster.replicas) {
      const [row] = await cluster.query(replica, 'SELECT pg_is_in_recovery() AS in_recovery');
      t.equal(row.in_recovery, true, `${replica.name} is in recovery`);
    }
  });

  t.test('a row inserted on the primary appears on both replicas', async (t) => {
    await cluster.query(pg1, 'CREATE TABLE harness_check (id int PRIMARY KEY, note text)');
    await cluster.query(pg1, 'INSERT INTO harness_check VALUES ($1, $2)', [1, 'from pg1']);
    await cluster.waitForReplication();
    for (const replica of cluster.replicas) {
      t.same(await cluster.query(replica, 'SELECT id, note FROM harness_check'), [{ id: 1, note: 'from pg1' }], replica.name);
    }
  });

  t.test('the check user authenticates with scram-sha-256 over TCP', async (t) => {
    const sql = "SELECT current_user AS who, pg_has_role(current_user, 'pg_monitor', 'MEMBER') AS monitor";
    for (const node of [pg1, pg2]) {
      const rows = await connectAndQuery({ port: node.port, user: CHECK_USER.name, password: CHECK_USER.password }, sql);
      t.same(rows, [{ who: CHECK_USER.name, monitor: true }], `logs in on ${node.name}`);
    }
    await t.rejects(
      connectAndQuery({ port: pg1.port, user: CHECK_USER.name, password: 'wrong-password' }, 'SELECT 1'),
      { code: '28P01' },
      'a wrong password is rejected',
    );
    const [stored] = await cluster.query(pg1, 'SELECT rolpassword FROM pg_authid WHERE rolname = $1', [CHECK_USER.name]);
    t.match(stored.rolpassword, /^SCRAM-SHA-256\$/, 'the password is stored as a SCRAM verifier');
  });

  t.test('a replica stops and starts again', async (t) => {
    await cluster.stop(pg3);
    await t.rejects(cluster.query(pg3, 'SELECT 1'), { code: 'ECONNREFUSED' }, 'stopped replica refuses connections');
    await cluster.stop(pg3); // stopping a stopped node is a no-op
    await cluster.query(pg1, 'INSERT INTO harness_check VALUES (2, $1)', ['while pg3 was down']);
    await cluster.start(pg3);
    await cluster.waitForReplication();
    t.same(await cluster.query(pg3, 'SELECT id FROM harness_check ORDER BY id'), [{ id: 1 }, { id: 2 }], 'pg3 caught up');
  });

  t.test('the primary is killed and pg2 is promoted', async (t) => {
    await cluster.kill9(pg1);
    await t.rejects(cluster.query(pg1, 'SELECT 1'), { code: 'ECONNREFUSED' }, 'killed primary refuses connections');
    await cluster.promote(pg2);
    const [row] = await cluster.query(pg2, 'SELECT pg_is_in_recovery() AS in_recovery');
    t.equal(row.in_recovery, false, 'pg2 left recovery');
    await cluster.query(pg2, "INSERT INTO harness_check VALUES (3, 'written on pg2')");
    t.equal(cluster.primary, pg1, 'primary still names the node created as primary');
  });

  t.test('destroy stops every node and removes baseDir', async (t) => {
    const baseDir = cluster.baseDir;
    t.ok(existsSync(baseDir));
    await cluster.destroy();
    t.notOk(existsSync(baseDir), `${baseDir} is gone`);
    for (const node of cluster.nodes) {
      await t.rejects(cluster.query(node, 'SELECT 1'), { code: 'ECONNREFUSED' }, `${node.name} is down`);
    }
    await cluster.destroy(); // idempotent; t.teardown calls it once more
  });
});

t.test('ssl: true serves TLS with a self-signed certificate', async (t) => {
  const cluster = await startCluster(t, { replicas: 1, ssl: true, settings: { work_mem: '8MB' } });
  for (const node of cluster.nodes) {
    const rows = await connectAndQuery(
      { port: node.port, user: 'postgres', ssl: { rejectUnauthorized: false } },
      'SELECT current_setting($$ssl$$) AS ssl, (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()) AS tls, current_setting($$work_mem$$) AS work_mem',
    );
    t.same(rows, [{ ssl: 'on', tls: true, work_mem: '8MB' }], `${node.name}: ssl = on, this connection uses TLS, extra settings applied`);
    const [show] = await connectAndQuery({ port: node.port, user: 'postgres', ssl: { rejectUnauthorized: false } }, 'SHOW ssl');
    t.equal(show.ssl, 'on', `${node.name}: SHOW ssl`);
  }
});

t.test('a failed create cleans up and says what it attempted', async (t) => {
  const baseDir = join(tmpdir(), `pgwarden-failed-create-${process.pid}`);
  await t.rejects(
    PgCluster.create({ replicas: 0, baseDir, settings: { shared_buffers: 'not-a-size' } }),
    { code: 'PGW_PG_START_FAILED', message: /pg1: could not start PostgreSQL on 127\.0\.0\.1:\d+ \(data dir .*\)[\s\S]*last lines of .*pg1\.log[\s\S]*shared_buffers/ },
  );
  t.notOk(existsSync(baseDir), 'the failed cluster left nothing on disk');
  await t.rejects(PgCluster.create({ replicas: -1 }), { code: 'PGW_PG_CLUSTER_OPTIONS' });
});
