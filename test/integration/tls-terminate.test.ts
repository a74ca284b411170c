// TLS termination (issue "TLS termination", point 4), against real PostgreSQL servers with TLS
// on and real clients (psql, node-postgres, a raw TLS socket for direct TLS and cancels), with a
// CA made in the test: verify-full works and fails against the wrong CA, the server leg is TLS
// when asked (pg_stat_ssl), cancels reach the exact server, a switchover closes idle TLS
// sessions at their boundary, certificates are re-read on reload (a bad one is refused), a
// client that sends garbage instead of a ClientHello is closed without hurting the others,
// direct TLS (PostgreSQL 17, ALPN postgresql) works, tls.client require refuses plain text,
// and SCRAM channel binding degrades as documented.
import { copyFileSync, existsSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { Client } from 'pg';
import t from 'tap';
import type { Test } from 'tap';
import type { PgCluster } from '../../src/harness/cluster';
import { startCluster } from '../helpers/cluster';
import { CHECK_USER, startProxy, waitFor, type RunningProxy } from '../helpers/proxy';
import { psql } from '../helpers/psql';
import { makeTestCa, opensslMissing, type TestCa } from '../helpers/test-ca';

const skip = opensslMissing();
if (skip) t.comment(`skipped: ${skip}`);

interface Setup {
  cluster: PgCluster;
  ca: TestCa;
  certFile: string;
  keyFile: string;
  p: RunningProxy;
}

async function setup(t: Test, tlsExtra = '', opts: { replicas?: number; server?: string } = {}): Promise<Setup> {
  const cluster = await startCluster(t, { replicas: opts.replicas ?? 1, checkUser: CHECK_USER, ssl: true });
  await cluster.query(cluster.primary, `GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer) TO ${CHECK_USER.name}`);
  const ca = makeTestCa(t);
  const issued = ca.issue('pgwarden', 'localhost', ['DNS:localhost', 'IP:127.0.0.1']);
  // The files pgwarden reads, copied so that a test can replace them for a reload.
  const certFile = join(ca.dir, 'served.crt');
  const keyFile = join(ca.dir, 'served.key');
  copyFileSync(issued.certFile, certFile);
  copyFileSync(issued.keyFile, keyFile);
  const p = await startProxy(t, cluster, {
    reloadable: true,
    extra: `tls:\n  mode: terminate\n  cert_file: ${certFile}\n  key_file: ${keyFile}\n  server: ${opts.server ?? 'require'}\n${tlsExtra}`,
    listeners: (rw, ro) => `  - { name: rw, bind: "127.0.0.1:${rw}", route: primary }\n  - { name: ro, bind: "127.0.0.1:${ro}", route: replica }`,
  });
  await waitFor('every server up', () => cluster.nodes.every((n) => p.app.topology.get(n.name)?.state === 'up'));
  return { cluster, ca, certFile, keyFile, p };
}

const verifyFull = (port: number, caFile: string, extra = '') => `host=localhost port=${port} user=postgres dbname=postgres sslmode=verify-full sslrootcert=${caFile} ${extra}`;

t.test('psql and node-postgres with verify-full; the wrong CA fails; the server leg is TLS', { skip }, async (t) => {
  const { ca, p } = await setup(t);
  const ok = await psql(verifyFull(p.rwPort, ca.caFile), 'select ssl from pg_stat_ssl where pid = pg_backend_pid()');
  t.equal(ok.code, 0, `psql sslmode=verify-full through pgwarden (${ok.err})`);
  t.equal(ok.out, 't', 'pg_stat_ssl: the server leg is TLS too (tls.server: require)');

  const other = makeTestCa(t, 'other-ca');
  const wrong = await psql(verifyFull(p.rwPort, other.caFile), 'select 1');
  t.not(wrong.code, 0, 'psql refuses pgwarden against another CA');
  t.match(wrong.err, /certificate verify failed/, wrong.err);

  const { readFileSync } = await import('node:fs');
  const c = new Client({ host: 'localhost', port: p.rwPort, user: 'postgres', database: 'postgres', ssl: { ca: readFileSync(ca.caFile), servername: 'localhost' } });
  await c.connect();
  t.equal((await c.query('select 41 + 1 as n')).rows[0].n, 42, 'node-postgres with a verified TLS connection');
  await c.end();
});

t.test('10 of 10 cancels through a replica route reach the exact server', { skip }, async (t) => {
  const { ca, p } = await setup(t);
  const { readFileSync } = await import('node:fs');
  const exact: string[] = [];
  p.app.bus.on('cancel.forwarded', (e) => exact.push(e.outcome));
  let cancelled = 0;
  for (let i = 0; i < 10; i++) {
    const c = new Client({ host: 'localhost', port: p.roPort, user: 'postgres', database: 'postgres', ssl: { ca: readFileSync(ca.caFile), servername: 'localhost' } });
    await c.connect();
    const running = c.query('select pg_sleep(30)').then(
      () => undefined,
      (e: { code?: string }) => e.code,
    );
    await waitFor('the sleep is running', async () => true);
    await new Promise((r) => setTimeout(r, 100));
    await sendCancel(p.roPort, ca.caFile, (c as unknown as { processID: number }).processID, (c as unknown as { secretKey: number }).secretKey);
    if ((await running) === '57014') cancelled++;
    await c.end();
  }
  t.equal(cancelled, 10, '10 of 10 queries cancelled');
  t.same(exact, Array(10).fill('exact'), 'every cancel went to the one server that issued the key');
});

/** A CancelRequest inside TLS, as libpq sends it over an sslmode=require connection. */
async function sendCancel(port: number, caFile: string, pid: number, secret: number): Promise<void> {
  const raw = net.connect(port, '127.0.0.1');
  await new Promise((r) => raw.once('connect', r));
  raw.write(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]));
  const answer = await new Promise<Buffer>((r) => raw.once('data', r));
  if (answer.toString() !== 'S') throw new Error(`SSLRequest answered ${answer.toString()}`);
  const { readFileSync } = await import('node:fs');
  const s = tls.connect({ socket: raw, ca: readFileSync(caFile), servername: 'localhost' });
  await new Promise((r, j) => (s.once('secureConnect', r), s.once('error', j)));
  const packet = Buffer.alloc(16);
  packet.writeInt32BE(16, 0);
  packet.writeInt32BE(80877102, 4);
  packet.writeInt32BE(pid, 8);
  packet.writeInt32BE(secret, 12);
  s.write(packet);
  await new Promise((r) => s.once('close', r));
}

t.test('a switchover closes idle TLS sessions at their transaction boundary', { skip }, async (t) => {
  const { ca, p } = await setup(t, '', { replicas: 1 });
  const { readFileSync } = await import('node:fs');
  await waitFor('pg2 a healthy replica', () => p.app.topology.get('pg2')?.role === 'replica' && p.app.topology.get('pg2')?.state === 'up');
  // The first error each client hears (node-postgres adds "terminated unexpectedly" after it).
  const errors: { code?: string }[] = [];
  const clients: Client[] = [];
  for (let i = 0; i < 3; i++) {
    const c = new Client({ host: 'localhost', port: p.rwPort, user: 'postgres', database: 'postgres', ssl: { ca: readFileSync(ca.caFile), servername: 'localhost' } });
    c.once('error', (e: Error & { code?: string }) => void errors.push(e));
    c.on('error', () => undefined);
    await c.connect();
    await c.query('select 1');
    clients.push(c);
  }
  const r = await p.app.switchover('pg2');
  t.match(r, { ok: true, from: 'pg1', to: 'pg2', closedInTransaction: 0 }, 'no TLS session had to wait for drain_timeout');
  t.ok((r.closedIdle ?? 0) >= 3, `the idle TLS sessions were closed at a boundary (${r.closedIdle})`);
  await waitFor('the three clients got the FATAL', () => errors.length >= 3);
  t.same(errors.map((e) => e.code), ['57P01', '57P01', '57P01'], 'each got FATAL 57P01 inside TLS', { errors: errors.map((e) => String(e)) });
  for (const c of clients) await c.end().catch(() => undefined);
});

t.test('garbage instead of a ClientHello is closed; other sessions are unaffected', { skip }, async (t) => {
  const { ca, p } = await setup(t);
  const { readFileSync } = await import('node:fs');
  const good = new Client({ host: 'localhost', port: p.rwPort, user: 'postgres', database: 'postgres', ssl: { ca: readFileSync(ca.caFile), servername: 'localhost' } });
  await good.connect();
  const raw = net.connect(p.rwPort, '127.0.0.1');
  await new Promise((r) => raw.once('connect', r));
  raw.write(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]));
  t.equal((await new Promise<Buffer>((r) => raw.once('data', r))).toString(), 'S');
  raw.on('error', () => undefined);
  raw.write('GET / HTTP/1.1\r\nHost: nothing\r\n\r\n');
  await new Promise((r) => raw.once('close', r));
  t.pass('pgwarden closed the connection that sent garbage');
  t.equal((await good.query('select 1 as n')).rows[0].n, 1, 'the other TLS session still works');
  await good.end();
});

t.test('direct TLS (PostgreSQL 17: no SSLRequest, ALPN postgresql)', { skip }, async (t) => {
  const { ca, p } = await setup(t);
  const { readFileSync } = await import('node:fs');
  const s = tls.connect({ port: p.rwPort, host: '127.0.0.1', servername: 'localhost', ca: readFileSync(ca.caFile), ALPNProtocols: ['postgresql'] });
  await new Promise((r, j) => (s.once('secureConnect', r), s.once('error', j)));
  t.equal(s.alpnProtocol, 'postgresql', 'ALPN postgresql agreed');
  const params = Buffer.from('user\0postgres\0database\0postgres\0\0');
  const startup = Buffer.alloc(8 + params.length);
  startup.writeInt32BE(startup.length, 0);
  startup.writeInt32BE(196608, 4);
  params.copy(startup, 8);
  s.write(startup);
  let got = Buffer.alloc(0);
  await waitFor('ReadyForQuery', async () => {
    const chunk = s.read() as Buffer | null;
    if (chunk) got = Buffer.concat([got, chunk]);
    return got.includes(Buffer.from([0x5a, 0, 0, 0, 5]));
  }, 10_000);
  t.equal(got[0], 0x52, 'the server answered with Authentication');
  s.end(Buffer.from([0x58, 0, 0, 0, 4]));
  const major = Number(/(\d+)/.exec((await psql('--version', '')).out)?.[1] ?? 0);
  if (major < 17) t.comment(`psql ${major}: no sslnegotiation=direct before PostgreSQL 17; the libpq variant is skipped`);
  else {
    const r = await psql(verifyFull(p.rwPort, ca.caFile, 'sslnegotiation=direct'), 'select 1');
    t.equal(r.out, '1', `psql ${major} with sslnegotiation=direct (${r.err})`);
  }
});

t.test('tls.client require refuses plain text with 28000; TLS clients are served', { skip }, async (t) => {
  const { ca, p } = await setup(t, '  client: require\n');
  const plain = await psql(`host=127.0.0.1 port=${p.rwPort} user=postgres dbname=postgres sslmode=disable`, 'select 1');
  t.not(plain.code, 0, 'a plain-text client is refused');
  t.match(plain.err, /TLS/, plain.err);
  const ok = await psql(verifyFull(p.rwPort, ca.caFile), 'select 1');
  t.equal(ok.out, '1', `a TLS client is served (${ok.err})`);
});

t.test('client_cert verify: a certificate signed by ca_file is required', { skip }, async (t) => {
  const clients = makeTestCa(t, 'clients-ca');
  const { ca, p } = await setup(t, `  client_cert: verify\n  ca_file: ${clients.caFile}\n`);
  const alice = clients.issue('alice', 'postgres', ['DNS:alice']);
  const withCert = await psql(verifyFull(p.rwPort, ca.caFile, `sslcert=${alice.certFile} sslkey=${alice.keyFile}`), 'select 1');
  t.equal(withCert.out, '1', `a client with a certificate of ca_file is served (${withCert.err})`);
  const none = await psql(verifyFull(p.rwPort, ca.caFile, 'sslcert=/nonexistent sslkey=/nonexistent'), 'select 1');
  t.not(none.code, 0, `a client without a certificate is refused (${none.err})`);
  const eve = makeTestCa(t, 'stranger-ca').issue('eve', 'postgres', ['DNS:eve']);
  const stranger = await psql(verifyFull(p.rwPort, ca.caFile, `sslcert=${eve.certFile} sslkey=${eve.keyFile}`), 'select 1');
  t.not(stranger.code, 0, `a certificate of another CA is refused (${stranger.err})`);
});

t.test('certificates are re-read on reload; a bad one is refused and the old one stays', { skip }, async (t) => {
  const { ca, p, certFile, keyFile } = await setup(t);
  const { readFileSync } = await import('node:fs');
  const serialOf = async () => {
    const s = tls.connect({ port: p.rwPort, host: '127.0.0.1', servername: 'localhost', ca: readFileSync(ca.caFile), ALPNProtocols: ['postgresql'] });
    await new Promise((r, j) => (s.once('secureConnect', r), s.once('error', j)));
    const serial = s.getPeerCertificate().serialNumber;
    s.destroy();
    return serial;
  };
  const before = await serialOf();
  const open = new Client({ host: 'localhost', port: p.rwPort, user: 'postgres', database: 'postgres', ssl: { ca: readFileSync(ca.caFile), servername: 'localhost' } });
  await open.connect();
  const next = ca.issue('renewed', 'localhost', ['DNS:localhost', 'IP:127.0.0.1']);
  copyFileSync(next.certFile, certFile);
  copyFileSync(next.keyFile, keyFile);
  const r = await p.app.reload();
  t.ok(r.ok, `reload ok (${JSON.stringify(r)})`);
  const after = await serialOf();
  t.not(after, before, `new connections get the renewed certificate (serial ${before} → ${after})`);
  t.equal((await open.query('select 1 as n')).rows[0].n, 1, 'a session opened before the reload goes on');

  writeFileSync(certFile, 'not a certificate\n');
  const bad = await p.app.reload();
  t.notOk(bad.ok, 'a reload with a bad certificate is refused');
  t.equal(await serialOf(), after, 'the last good certificate stays in use');
  await open.end();
  t.ok(existsSync(certFile));
});

t.test('SCRAM channel binding: what works through a terminating proxy', { skip }, async (t) => {
  // A plain server leg: the server offers no SCRAM-SHA-256-PLUS, the client (over TLS to
  // pgwarden) logs in with SCRAM-SHA-256; channel_binding=require stops with libpq's own error.
  const plainLeg = await setup(t, '', { server: 'disable' });
  const as = (port: number, caFile: string, cb: string) => `host=localhost port=${port} user=${CHECK_USER.name} dbname=postgres sslmode=verify-full sslrootcert=${caFile} channel_binding=${cb}`;
  const env = { PGPASSWORD: CHECK_USER.password };
  const prefer = await psql(as(plainLeg.p.rwPort, plainLeg.ca.caFile, 'prefer'), 'select current_user', env);
  t.equal(prefer.out, CHECK_USER.name, `server leg plain: channel_binding=prefer logs in with SCRAM-SHA-256 (${prefer.err})`);
  const required = await psql(as(plainLeg.p.rwPort, plainLeg.ca.caFile, 'require'), 'select 1', env);
  t.not(required.code, 0, 'channel_binding=require cannot log in through a terminating proxy');
  t.match(required.err, /channel binding is required/, required.err);

  // A TLS server leg: pgwarden takes SCRAM-SHA-256-PLUS out of the server's list, the client
  // (channel_binding=prefer) then says it supports binding but the server does not (gs2 'y'),
  // and PostgreSQL, which does support it on that TLS connection, refuses the login as a
  // possible downgrade. channel_binding=disable logs in. (README, "TLS": SCRAM users want a
  // plain server leg, or channel_binding=disable.)
  const tlsLeg = await setup(t);
  const refused = await psql(as(tlsLeg.p.rwPort, tlsLeg.ca.caFile, 'prefer'), 'select 1', env);
  t.not(refused.code, 0, 'server leg TLS: channel_binding=prefer is refused by the server');
  t.match(refused.err, /channel binding negotiation error/, refused.err);
  const disabled = await psql(as(tlsLeg.p.rwPort, tlsLeg.ca.caFile, 'disable'), 'select current_user', env);
  t.equal(disabled.out, CHECK_USER.name, `server leg TLS: channel_binding=disable logs in (${disabled.err})`);
});
