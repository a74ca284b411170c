// tls.server: pgwarden's own connections to a real PostgreSQL server with ssl = on — the health
// checks (through the App) and the failover statements (admin-sql) — checked against the server's
// certificate (verify-full by IP and by name, a CA that did not sign it); then with ssl = off,
// `require` fails the check (L6TLS) and `prefer` falls back to plain text as libpq does.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { HealthConfig, TlsConfig } from '../../src/config/types';
import { currentWalLsn } from '../../src/control/admin-sql';
import { postgresProbe } from '../../src/health/postgres-probe';
import type { ProbeResult } from '../../src/health/types';
import { ServerLegTls } from '../../src/net/tls-credentials';
import { startCluster } from '../helpers/cluster';
import { CHECK_USER, startProxy, waitFor, waitForBackend } from '../helpers/proxy';
import { makeTlsFiles, opensslMissing } from '../helpers/tls-files';

const NO_TLS: TlsConfig = { mode: 'passthrough', minVersion: 'TLSv1.2', clientCert: 'off', client: 'allow', server: 'disable' };

t.test('tls.server against a real server', { skip: opensslMissing() ?? false }, async (t) => {
  const cluster = await startCluster(t, { replicas: 0, ssl: true, checkUser: CHECK_USER });
  const pg1 = cluster.primary;
  // The harness's self-signed certificate (CN and SAN IP 127.0.0.1, SAN DNS localhost) is its own CA.
  const serverCert = join(pg1.dataDir, 'server.crt');
  const dir = mkdtempSync(join(tmpdir(), 'pgwarden-server-leg-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const otherCa = makeTlsFiles(dir).f('ca.pem');

  const tlsOf = (server: TlsConfig['server'], serverCaFile?: string): TlsConfig => ({ ...NO_TLS, server, ...(serverCaFile === undefined ? {} : { serverCaFile }) });
  const health = { user: CHECK_USER.name, password: CHECK_USER.password, database: 'postgres', timeout: 5_000 } as const;
  const probe = (tls: TlsConfig, host = '127.0.0.1'): Promise<ProbeResult> => {
    const leg = ServerLegTls.load(tls);
    const ssl = leg.options(host);
    const p = postgresProbe({ host, port: pg1.port, ...health, timeoutMs: 5_000, ...(ssl === undefined ? {} : { ssl, sslFallback: leg.mode === 'prefer' }) });
    return p(new AbortController().signal).finally(() => p.close?.());
  };
  const target = { name: pg1.name, host: '127.0.0.1', port: pg1.port };
  const login = (tls: TlsConfig) => ({ health: health as unknown as HealthConfig, tls });

  await t.test('the App checks over verify-full with server_ca_file: the check connection is TLS', async (t) => {
    const p = await startProxy(t, cluster, { extra: `tls:\n  server: verify-full\n  server_ca_file: ${serverCert}` });
    await waitForBackend(p, pg1.name, 'up');
    const rows = await cluster.query(pg1, "select s.ssl from pg_stat_ssl s join pg_stat_activity a using (pid) where a.application_name = 'pgwarden-check'");
    t.same(rows, [{ ssl: true }], 'the kept check connection is encrypted');
  });

  await t.test('verify-full by IP and by name; a CA that did not sign the certificate fails (L6TLS)', async (t) => {
    const ok = await probe(tlsOf('verify-full', serverCert));
    t.match(ok, { ok: true, role: 'primary' }, '127.0.0.1: the IP SAN');
    t.same(Object.keys(ok.phases ?? {}), ['connect', 'tls', 'auth', 'query'], 'a TLS check times its handshake as a phase of its own');
    t.match(await probe(tlsOf('verify-full', otherCa)), { ok: false, layer: 'L6TLS', phases: { connect: Number, tls: Number } }, 'a failed handshake ends in the tls phase');
    t.match(await probe(tlsOf('verify-full', serverCert), 'localhost'), { ok: true }, 'localhost: the DNS SAN');
    t.match(await probe(tlsOf('verify-full', otherCa)), { ok: false, layer: 'L6TLS' });
    t.match(await probe(tlsOf('verify-ca', otherCa)), { ok: false, layer: 'L6TLS' });
    t.match(await probe(tlsOf('require')), { ok: true }, 'require checks nothing');
  });

  await t.test('failover statements use tls.server too', async (t) => {
    t.type(await currentWalLsn(target, login(tlsOf('verify-full', serverCert))), 'bigint');
    await t.rejects(currentWalLsn(target, login(tlsOf('verify-full', otherCa))), { code: 'PGW_ADMIN_SQL_FAILED', message: /pg_current_wal_lsn\(\) on pg\w* \(127\.0\.0\.1:\d+\) failed: .*certificate/ });
    await t.rejects(currentWalLsn(target, login(tlsOf('verify-full', join(dir, 'nope.pem')))), { message: /tls\.server_ca_file: cannot read .*nope\.pem: no such file/ });
  });

  await t.test('a server without TLS: require fails the check, prefer falls back to plain text', async (t) => {
    await cluster.query(pg1, 'alter system set ssl = off');
    await cluster.query(pg1, 'select pg_reload_conf()');
    await waitFor('ssl is off', async () => (await cluster.query(pg1, 'show ssl'))[0]?.ssl === 'off');
    const refused = await probe(tlsOf('require'));
    t.match(refused, { ok: false, layer: 'L6TLS', message: /does not support SSL/ });
    t.match(await probe(tlsOf('prefer')), { ok: true, role: 'primary' });
    t.type(await currentWalLsn(target, login(tlsOf('prefer'))), 'bigint', 'and so do failover statements');
    await t.rejects(currentWalLsn(target, login(tlsOf('require'))), { message: /does not support SSL/ });
  });
});
