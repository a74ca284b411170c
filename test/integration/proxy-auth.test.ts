// auth.mode proxy (issue 19, point 1) against a real PostgreSQL server whose pg_hba.conf asks
// for scram-sha-256 and md5: pgwarden checks the password itself (auth.query through the README's
// SECURITY DEFINER function), logs in to the server as the user, and hands the client its own
// cancel key. psql and node-postgres log in with the right password; a wrong password and an
// unknown user get PostgreSQL's own 28P01; a malformed SASL message gets 08P01 and a close; a
// cancel through pgwarden's key cancels the right query; a role without a password stays end to
// end; the auth user's password never reaches the log.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { cancelRequest } from '../../src/protocol/cancel';
import { AUTH_PASSWORD, AUTH_YAML, MD5, SCRAM, authCluster, login, loginError } from '../helpers/auth-cluster';
import { psql } from '../helpers/psql';
import { makeTestCa, opensslMissing } from '../helpers/test-ca';
import { startProxy, waitFor } from '../helpers/proxy';

/** One message off a raw socket: resolves with its type and body once complete. */
function readMessage(socket: net.Socket): Promise<{ type: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 5 || buf.length < 1 + buf.readInt32BE(1)) return;
      socket.off('data', onData);
      const end = 1 + buf.readInt32BE(1);
      if (end < buf.length) socket.unshift(buf.subarray(end));
      resolve({ type: String.fromCharCode(buf[0]!), body: buf.subarray(5, end) });
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
}

t.test('auth.mode proxy', async (t) => {
  const cluster = await authCluster(t, 0);
  const primary = cluster.primary;
  const p = await startProxy(t, cluster, { extra: AUTH_YAML });
  await waitFor('primary up', () => p.app.topology.get(primary.name)?.state === 'up');
  const port = p.rwPort;

  t.test('node-postgres logs in with SCRAM and md5; the startup parameters reach the server', async (t) => {
    const c = await login(port, SCRAM.user, SCRAM.password, { application_name: 'scram-app' });
    const r = await c.query('SELECT current_user AS u, current_setting($1) AS app, pg_backend_pid() AS pid', ['application_name']);
    t.same([r.rows[0].u, r.rows[0].app], [SCRAM.user, 'scram-app']);
    t.not((c as unknown as { processID: number }).processID, r.rows[0].pid, "the client holds pgwarden's key, not the server's process id");
    await c.end();
    const m = await login(port, MD5.user, MD5.password);
    t.equal((await m.query('SELECT current_user AS u')).rows[0].u, MD5.user);
    await m.end();
  });

  t.test('psql logs in with SCRAM through pgwarden', async (t) => {
    const r = await psql(`host=127.0.0.1 port=${port} user=${SCRAM.user} dbname=postgres`, 'SELECT current_user', { PGPASSWORD: SCRAM.password });
    t.same([r.code, r.out], [0, SCRAM.user], r.err);
    const bad = await psql(`host=127.0.0.1 port=${port} user=${SCRAM.user} dbname=postgres`, 'SELECT 1', { PGPASSWORD: 'nope' });
    t.not(bad.code, 0);
    t.match(bad.err, `password authentication failed for user "${SCRAM.user}"`);
  });

  t.test('a wrong password and an unknown user get PostgreSQL\'s own 28P01', async (t) => {
    const direct = await loginError(primary.port, SCRAM.user, 'wrong-pw');
    const proxied = await loginError(port, SCRAM.user, 'wrong-pw');
    t.same(proxied, direct, 'the same SQLSTATE and message as from PostgreSQL itself');
    t.same(proxied, { code: '28P01', message: `password authentication failed for user "${SCRAM.user}"` });
    t.same(await loginError(port, MD5.user, 'wrong-pw'), { code: '28P01', message: `password authentication failed for user "${MD5.user}"` });
    t.same(await loginError(port, 'no_such_user', 'whatever'), { code: '28P01', message: 'password authentication failed for user "no_such_user"' });
  });

  t.test('a role without a password stays end to end (the server decides)', async (t) => {
    const c = await login(port, 'app_nopw', '');
    t.equal((await c.query('SELECT current_user AS u')).rows[0].u, 'app_nopw');
    await c.end();
  });

  t.test("a cancel with pgwarden's own key cancels the right query", async (t) => {
    const victim = await login(port, SCRAM.user, SCRAM.password);
    const bystander = await login(port, SCRAM.user, SCRAM.password);
    const running = victim.query('SELECT pg_sleep(60)').then(
      () => 'finished',
      (e: { code?: string }) => e.code,
    );
    const other = bystander.query('SELECT pg_sleep(1) AS s').then(() => 'finished', (e: { code?: string }) => e.code);
    await waitFor('the sleep is running', async () => (await cluster.query(primary, "SELECT count(*)::int AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)' AND state = 'active'"))[0].n === 1);
    const { processID, secretKey } = victim as unknown as { processID: number; secretKey: number };
    await new Promise<void>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => s.end(cancelRequest(processID, secretKey)));
      s.on('close', () => resolve());
      s.on('error', reject);
    });
    t.equal(await running, '57014', 'query_canceled');
    t.equal(await other, 'finished', 'the other session was not cancelled');
    t.equal((await victim.query('SELECT 1 AS one')).rows[0].one, 1, 'the session goes on after the cancel');
    await victim.end();
    await bystander.end();
  });

  t.test('a malformed SASL message gets 08P01 and a close; pgwarden goes on', async (t) => {
    const s = net.connect({ host: '127.0.0.1', port });
    await new Promise((r) => s.once('connect', r));
    const params = Buffer.from(`user\0${SCRAM.user}\0database\0postgres\0\0`);
    const startup = Buffer.alloc(8 + params.length);
    startup.writeInt32BE(startup.length, 0);
    startup.writeInt32BE(196608, 4);
    params.copy(startup, 8);
    s.write(startup);
    const sasl = await readMessage(s);
    t.equal(sasl.type, 'R');
    t.equal(sasl.body.readInt32BE(0), 10, 'AuthenticationSASL');
    t.match(sasl.body.toString('latin1', 4), /^SCRAM-SHA-256\0\0$/, 'SCRAM-SHA-256 only, no -PLUS');
    const junk = Buffer.from('SCRAM-SHA-256\0\x00\x00\x00\x05zzzzz', 'latin1');
    const msg = Buffer.alloc(5 + junk.length);
    msg[0] = 0x70;
    msg.writeInt32BE(4 + junk.length, 1);
    junk.copy(msg, 5);
    s.write(msg);
    const err = await readMessage(s);
    t.equal(err.type, 'E');
    t.match(err.body.toString('latin1'), /C08P01/);
    await new Promise((r) => s.once('close', r));
    const c = await login(port, SCRAM.user, SCRAM.password);
    await c.end();
  });

  t.test("the auth user's password and the clients' passwords never reach the log", async (t) => {
    const log = p.rawLog();
    t.ok(log.length > 0);
    for (const secret of [AUTH_PASSWORD, SCRAM.password, MD5.password]) t.notOk(log.includes(secret), 'not in the log');
    t.ok(p.logs.some((l) => l.event === 'session.error' && l.code === 'PGW_AUTH_FAILED'), 'refusals are logged with their code');
  });
});

t.test('with no primary the authenticated client waits in the queue and logs in to the promoted server', async (t) => {
  const cluster = await authCluster(t, 1);
  const [primary, replica] = [cluster.primary, cluster.replicas[0]!];
  const p = await startProxy(t, cluster, { extra: AUTH_YAML });
  await waitFor('both up', () => cluster.nodes.every((n) => p.app.topology.get(n.name)?.state === 'up'));
  await cluster.stop(primary, 'immediate');
  await waitFor('the old primary down', () => p.app.topology.get(primary.name)?.state === 'down');
  // auth.query runs on the replica (up, same pg_authid); the login waits for a primary.
  const connecting = login(p.rwPort, SCRAM.user, SCRAM.password);
  await waitFor('the client authenticated and queued', () => p.logs.some((l) => l.event === 'session.phase' && l.from === 'authenticating' && l.to === 'routing'));
  await cluster.promote(replica);
  const c = await connecting;
  const r = await c.query('SELECT current_user AS u, inet_server_port() AS port, pg_is_in_recovery() AS rec');
  t.same([r.rows[0].u, Number(r.rows[0].port), r.rows[0].rec], [SCRAM.user, replica.port, false]);
  await c.end();
});

t.test('under tls.mode terminate: psql over TLS logs in, a wrong password is 28P01', { skip: opensslMissing() ?? false }, async (t) => {
  const cluster = await authCluster(t, 0);
  const ca = makeTestCa(t);
  const cert = ca.issue('pgwarden', 'localhost', ['DNS:localhost', 'IP:127.0.0.1']);
  const p = await startProxy(t, cluster, { extra: `${AUTH_YAML}tls:\n  mode: terminate\n  cert_file: ${cert.certFile}\n  key_file: ${cert.keyFile}\n` });
  await waitFor('primary up', () => p.app.topology.get(cluster.primary.name)?.state === 'up');
  const conninfo = `host=127.0.0.1 port=${p.rwPort} user=${SCRAM.user} dbname=postgres sslmode=require`;
  const ok = await psql(conninfo, 'SELECT current_user', { PGPASSWORD: SCRAM.password });
  t.same([ok.code, ok.out], [0, SCRAM.user], ok.err);
  const bad = await psql(conninfo, 'SELECT 1', { PGPASSWORD: 'nope' });
  t.not(bad.code, 0);
  t.match(bad.err, `password authentication failed for user "${SCRAM.user}"`);
});

t.test('a config without auth.user exits 2 with the key path', async (t) => {
  const cli = join(__dirname, '..', '..', 'dist', 'cli.js');
  const dir = mkdtempSync(join(tmpdir(), 'pgwarden-auth-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'pgwarden.yaml');
  writeFileSync(file, 'listeners:\n  - { name: rw, bind: "127.0.0.1:6432", route: primary }\nbackends:\n  - { name: pg1, host: 127.0.0.1, port: 5432 }\nauth:\n  mode: proxy\n');
  const r = spawnSync(process.execPath, [cli, 'check', '--config', file], { encoding: 'utf8', timeout: 30_000 });
  t.equal(r.status, 2);
  t.match(r.stderr, /auth\.user/);
  t.match(r.stderr, /auth\.password_env/);
});
