// Session fault paths against real PostgreSQL: every session.end names its cause; a client that
// vanishes without a FIN (its packets silently dropped) is cut by client keepalive /
// TCP_USER_TIMEOUT and its PostgreSQL backend freed; client_idle_timeout closes an idle session
// with 57P05 the way PostgreSQL's idle_session_timeout would.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import t from 'tap';
import type { Client } from 'pg';
import { startCluster } from '../helpers/cluster';
import { CHECK_USER, connect, startProxy, waitFor } from '../helpers/proxy';
import { isRoot } from '../../src/harness/run';

type End = { cause: string; reason?: string; backend?: string };

t.test('session.end names why each session ended', async (t) => {
  const cluster = await startCluster(t, { replicas: 0, checkUser: CHECK_USER });
  const p = await startProxy(t, cluster, { listeners: (rw) => `  - { name: rw, bind: "127.0.0.1:${rw}", route: primary }` });
  await waitFor('pg1 is the primary', () => p.app.topology.primary()?.name === 'pg1');
  const ends: End[] = [];
  p.app.bus.on('session.end', (e) => ends.push(e));

  const polite = await connect(p.rwPort, { application_name: 'polite' });
  await polite.query('select 1');
  await polite.end();
  await waitFor('the polite session ended', () => ends.length === 1);
  t.equal(ends[0].cause, 'client-terminate', 'a client that says Terminate');

  const victim = await connect(p.rwPort, { application_name: 'victim' });
  const victimError = new Promise<Error>((resolve) => victim.on('error', resolve));
  await cluster.query(cluster.primary, "select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'victim'");
  await victimError;
  await waitFor('the terminated session ended', () => ends.length === 2);
  t.equal(ends[1].cause, 'server-closed', 'a server that closed the session (pg_terminate_backend)');

  const drained = await connect(p.rwPort, { application_name: 'drained' });
  const drainedError = new Promise<Error & { code?: string }>((resolve) => drained.on('error', resolve));
  p.app.setAdminState('pg1', 'maint');
  t.equal((await drainedError).code, '57P01', 'maintenance closes the session with 57P01');
  await waitFor('the drained session ended', () => ends.length === 3);
  t.match(ends[2], { cause: 'drained', reason: 'maint' });
  p.app.setAdminState('pg1', 'ready');
});

t.test('client_idle_timeout closes a session idle between transactions with 57P05', async (t) => {
  const cluster = await startCluster(t, { replicas: 0, checkUser: CHECK_USER });
  const p = await startProxy(t, cluster, {
    listeners: (rw) => `  - { name: rw, bind: "127.0.0.1:${rw}", route: primary }`,
    extra: 'proxy:\n  client_idle_timeout: 1s',
  });
  await waitFor('pg1 is the primary', () => p.app.topology.primary()?.name === 'pg1');
  const ends: End[] = [];
  p.app.bus.on('session.end', (e) => ends.push(e));
  const c = await connect(p.rwPort);
  const closed = new Promise<Error & { code?: string }>((resolve) => c.on('error', resolve));
  await c.query('select 1');
  const err = await closed;
  t.equal(err.code, '57P05');
  await waitFor('the session ended', () => ends.length === 1);
  t.equal(ends[0].cause, 'idle-timeout');
});

const noIptables = !isRoot()
  ? 'needs root (iptables)'
  : spawnSync('iptables', ['-S', 'INPUT'], { stdio: 'ignore' }).status !== 0
    ? 'iptables is not usable here'
    : undefined;
if (noIptables) console.log(`# skipping the vanished-client test: ${noIptables}`);

t.test('a client that vanishes without a FIN does not keep its PostgreSQL backend', { skip: noIptables }, async (t) => {
  const cluster = await startCluster(t, { replicas: 0, checkUser: CHECK_USER });
  const p = await startProxy(t, cluster, {
    listeners: (rw) => `  - { name: rw, bind: "127.0.0.1:${rw}", route: primary }`,
    extra: 'proxy:\n  client_keepalive: { idle: 1s, interval: 1s, count: 2 }\n  client_user_timeout: 3s',
  });
  await waitFor('pg1 is the primary', () => p.app.topology.primary()?.name === 'pg1');
  const ends: End[] = [];
  p.app.bus.on('session.end', (e) => ends.push(e));
  const c: Client = await connect(p.rwPort, { application_name: 'vanishing' });
  await c.query('select 1');
  const clientPort = (c as unknown as { connection: { stream: { localPort: number } } }).connection.stream.localPort;
  // Everything the client sends to pgwarden is dropped from now on: no FIN, no RST, the client
  // is simply gone, like a laptop closed or a NAT that forgot the flow.
  const rule = ['INPUT', '-i', 'lo', '-p', 'tcp', '--sport', String(clientPort), '--dport', String(p.rwPort), '-m', 'comment', '--comment', `pgwarden-test-${randomBytes(3).toString('hex')}`, '-j', 'DROP'];
  const added = spawnSync('iptables', ['-I', ...rule], { encoding: 'utf8' });
  t.equal(added.status, 0, `iptables -I: ${added.stderr}`);
  t.teardown(() => {
    spawnSync('iptables', ['-D', ...rule]);
    (c as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
  });
  const backends = async () =>
    Number((await cluster.query(cluster.primary, "select count(*) as n from pg_stat_activity where application_name = 'vanishing'"))[0].n);
  t.equal(await backends(), 1, 'the client has a backend before it vanishes');
  await waitFor('pgwarden gave up on the vanished client', () => ends.length === 1, 30_000);
  t.equal(ends[0].cause, 'client-timeout', 'keepalive / TCP_USER_TIMEOUT named as the cause');
  await waitFor('its PostgreSQL backend is gone', async () => (await backends()) === 0, 15_000);
  t.pass('the PostgreSQL backend was freed');
});
