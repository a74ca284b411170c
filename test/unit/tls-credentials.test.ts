// TLS files and the socket options made from them (src/net/tls-credentials.ts), with a CA and
// certificates made here by the openssl CLI, and real handshakes over loopback between Node TLS
// sockets (no PostgreSQL: this is the TLS layer alone).
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import t, { type Test } from 'tap';
import type { TlsConfig } from '../../src/config/types';
import { TlsFilesError } from '../../src/errors';
import { loadTlsFiles, ServerLegTls, serverLegOptions, ServerTlsCredentials } from '../../src/net/tls-credentials';
import { makeTlsFiles, opensslMissing, type TlsTestFiles } from '../helpers/tls-files';

const BASE: TlsConfig = { mode: 'terminate', minVersion: 'TLSv1.2', clientCert: 'off', client: 'allow', server: 'disable' };

function terminate(files: TlsTestFiles, extra: Partial<TlsConfig> = {}): TlsConfig {
  return { ...BASE, certFile: files.f('server.pem'), keyFile: files.f('server.key'), ...extra };
}

function problemsOf(fn: () => unknown): { path: string; message: string; hint?: string }[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof TlsFilesError) return [...e.problems];
    throw e;
  }
  return [];
}

type Outcome = { ok: true; alpn: string | false; data: string } | { ok: false; error: string };

/**
 * One handshake: a plain TCP server wraps each connection in `new tls.TLSSocket(raw, server)`
 * (as a session does after answering S), says "ok" once secure (unless `check` refuses the
 * client), and a client connects with `client` over its own TCP socket.
 */
async function handshake(t: Test, server: tls.TLSSocketOptions, client: tls.ConnectionOptions, check?: (s: tls.TLSSocket) => Error | undefined): Promise<Outcome> {
  const sockets = new Set<net.Socket>();
  const listener = net.createServer((raw) => {
    sockets.add(raw);
    raw.on('error', () => undefined);
    const secure = new tls.TLSSocket(raw, server);
    secure.on('error', () => undefined);
    secure.on('secure', () => {
      const refused = check?.(secure);
      if (refused === undefined) secure.end('ok');
      else secure.destroy();
    });
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    listener.close();
  });
  const { port } = listener.address() as net.AddressInfo;
  return new Promise<Outcome>((resolve) => {
    const raw = net.connect(port, '127.0.0.1');
    const socket = tls.connect({ ...client, socket: raw });
    let data = '';
    socket.on('data', (d: Buffer) => (data += d.toString()));
    socket.on('error', (e) => resolve({ ok: false, error: (e as NodeJS.ErrnoException).code ?? e.message }));
    socket.on('close', () => resolve(data === 'ok' ? { ok: true, alpn: socket.alpnProtocol ?? false, data } : { ok: false, error: 'closed without ok' }));
  });
}

const missing = opensslMissing();
if (missing !== undefined) {
  t.plan(0, missing);
} else {
  const dir = mkdtempSync(join(tmpdir(), 'pgwarden-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const files = makeTlsFiles(dir);
  const { f } = files;

  t.test('a certificate and its key load; options() are for a server-side TLSSocket', async (t) => {
    const creds = ServerTlsCredentials.load(terminate(files));
    t.match(creds.certificate.subject, /CN=localhost/);
    t.strictSame(creds.options(), { isServer: true, secureContext: creds.context, requestCert: false, rejectUnauthorized: false, ALPNProtocols: ['postgresql'] });
    t.not(creds.options().ALPNProtocols, creds.options().ALPNProtocols, 'fresh options each time');
    const verify = ServerTlsCredentials.load(terminate(files, { clientCert: 'verify', caFile: f('ca.pem') })).options();
    t.match(verify, { requestCert: true, rejectUnauthorized: true });

    const both = loadTlsFiles(terminate(files, { server: 'verify-full', serverCaFile: f('ca.pem') }));
    t.ok(both.credentials);
    t.equal(both.serverLeg, both.credentials?.serverLeg, 'one load: the server leg is the credentials\' own');
    t.equal(both.serverLeg.mode, 'verify-full');
    const passthrough = loadTlsFiles({ ...BASE, mode: 'passthrough', server: 'require' });
    t.equal(passthrough.credentials, undefined, 'no certificate outside terminate');
    t.equal(passthrough.serverLeg.mode, 'require');
  });

  t.test('a file that cannot be used: the key, the file and why', async (t) => {
    const missing = problemsOf(() => ServerTlsCredentials.load(terminate(files, { certFile: f('nope.pem') })));
    t.same(missing, [{ path: 'tls.cert_file', message: `cannot read ${f('nope.pem')}: no such file` }]);
    let message = '';
    try {
      ServerTlsCredentials.load(terminate(files, { certFile: f('nope.pem') }));
    } catch (e) {
      message = (e as Error).message;
      t.equal((e as TlsFilesError).code, 'PGW_TLS_FILES');
    }
    t.equal(message, `cannot use the TLS files the configuration names (1 problem):\n  tls.cert_file: cannot read ${f('nope.pem')}: no such file`);

    t.match(problemsOf(() => ServerTlsCredentials.load(terminate(files, { certFile: dir }))), [{ path: 'tls.cert_file', message: /is a directory/ }]);
    t.match(problemsOf(() => ServerTlsCredentials.load(terminate(files, { certFile: f('garbage.pem') }))), [
      { path: 'tls.cert_file', message: /holds no PEM certificate .*expected pgwarden's certificate/, hint: /openssl x509 -inform der/ },
    ]);
    t.match(problemsOf(() => ServerTlsCredentials.load(terminate(files, { keyFile: f('garbage.pem') }))), [{ path: 'tls.key_file', message: /holds no private key pgwarden can read/ }]);
    t.match(problemsOf(() => ServerTlsCredentials.load(terminate(files, { keyFile: f('encrypted.key') }))), [
      { path: 'tls.key_file', message: `the key in ${f('encrypted.key')} is encrypted`, hint: /cannot ask for a passphrase/ },
    ]);
    t.match(problemsOf(() => ServerTlsCredentials.load(terminate(files, { keyFile: f('encrypted-legacy.key') }))), [{ path: 'tls.key_file', message: /is encrypted/ }], 'the Proc-Type form too');

    const everything = problemsOf(() =>
      loadTlsFiles(terminate(files, { certFile: f('nope.pem'), clientCert: 'verify', caFile: f('none-ca.pem'), server: 'verify-ca', serverCaFile: f('garbage.pem') })),
    );
    t.same(everything.map((p) => p.path), ['tls.cert_file', 'tls.ca_file', 'tls.server_ca_file'], 'every problem of one load at once');
    t.match(problemsOf(() => loadTlsFiles({ ...BASE, mode: 'passthrough', server: 'verify-full', serverCaFile: f('nope.pem') })), [{ path: 'tls.server_ca_file', message: /no such file/ }]);
    t.same(problemsOf(() => loadTlsFiles({ ...BASE, mode: 'passthrough', server: 'require', serverCaFile: f('nope.pem') })), [], 'a CA that would not be used is not read');
    t.match(problemsOf(() => ServerTlsCredentials.load({ ...BASE })), [{ path: 'tls.cert_file', message: /is not set/ }, { path: 'tls.key_file', message: /is not set/ }]);
  });

  t.test('a key that is not the certificate\'s', async (t) => {
    t.same(problemsOf(() => ServerTlsCredentials.load(terminate(files, { keyFile: f('client.key') }))), [
      {
        path: 'tls.key_file',
        message: `the key in ${f('client.key')} does not belong to the certificate in ${f('server.pem')}`,
        hint: 'key_file must be the private key of the first certificate in cert_file',
      },
    ]);
  });

  t.test('an unreadable file says whose permission is missing', { skip: process.getuid?.() === 0 ? 'running as root: every file is readable' : false }, async (t) => {
    const locked = f('locked.key');
    writeFileSync(locked, 'x');
    chmodSync(locked, 0o000);
    t.match(problemsOf(() => ServerTlsCredentials.load(terminate(files, { keyFile: locked }))), [{ path: 'tls.key_file', message: /permission denied/, hint: /readable by the user pgwarden runs as/ }]);
  });

  t.test('handshakes with options(): certificate, ALPN, min_version', async (t) => {
    const creds = ServerTlsCredentials.load(terminate(files));
    const trusting = { ca: [readFileSync(f('ca.pem'))], servername: 'localhost' };
    t.same(await handshake(t, creds.options(), { ...trusting, ALPNProtocols: ['postgresql'] }), { ok: true, alpn: 'postgresql', data: 'ok' }, 'a PostgreSQL 17 direct-TLS client');
    t.same(await handshake(t, creds.options(), trusting), { ok: true, alpn: false, data: 'ok' }, 'a client that sends no ALPN (libpq before 17)');
    const v13 = ServerTlsCredentials.load(terminate(files, { minVersion: 'TLSv1.3' }));
    t.match(await handshake(t, v13.options(), { ...trusting, maxVersion: 'TLSv1.2' }), { ok: false }, 'min_version TLSv1.3 refuses a TLS 1.2 client');
    t.match(await handshake(t, v13.options(), trusting), { ok: true });
  });

  t.test('client_cert: verify refuses no certificate and, with clientCertificateError(), a stranger\'s', async (t) => {
    const creds = ServerTlsCredentials.load(terminate(files, { clientCert: 'verify', caFile: f('ca.pem') }));
    const check = (s: tls.TLSSocket) => creds.clientCertificateError(s);
    const base = { ca: [readFileSync(f('ca.pem'))], servername: 'localhost' };
    const cert = (name: string) => ({ cert: readFileSync(f(`${name}.pem`)), key: readFileSync(f(`${name}.key`)) });
    t.match(await handshake(t, creds.options(), { ...base, ...cert('client') }, check), { ok: true }, 'signed by ca_file');
    t.match(await handshake(t, creds.options(), base, check), { ok: false }, 'no certificate: refused in the handshake');
    t.match(await handshake(t, creds.options(), { ...base, ...cert('stranger') }, check), { ok: false }, 'another CA: refused by clientCertificateError');
    t.match(await handshake(t, creds.options(), { ...base, ...cert('stranger') }), { ok: true }, 'why the check is needed: a bare TLSSocket lets it through');

    let seen: Error | undefined;
    await handshake(t, creds.options(), { ...base, ...cert('stranger') }, (s) => (seen = creds.clientCertificateError(s)));
    t.match(seen, { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
    const off = ServerTlsCredentials.load(terminate(files));
    await handshake(t, off.options(), { ...base, ...cert('stranger') }, (s) => (seen = off.clientCertificateError(s)));
    t.equal(seen, undefined, 'client_cert off: nothing to refuse');
  });

  t.test('the server leg: libpq sslmode words as tls.connect options', async (t) => {
    const leg = (server: TlsConfig['server'], serverCaFile?: string) => ServerLegTls.load({ ...BASE, mode: 'passthrough', server, ...(serverCaFile === undefined ? {} : { serverCaFile }) });
    t.equal(leg('disable').options('db.example.com'), undefined);
    t.strictSame(leg('prefer').options('db.example.com'), { servername: 'db.example.com', rejectUnauthorized: false });
    t.strictSame(leg('require').options('10.0.0.5'), { rejectUnauthorized: false }, 'no SNI for an IP address');
    const ca = leg('verify-ca', f('ca.pem')).options('::1');
    t.match(ca, { rejectUnauthorized: true, ca: Buffer });
    t.equal(ca?.checkServerIdentity?.('::1', {} as never), undefined, 'verify-ca does not check the name');
    t.strictSame(Object.keys(leg('verify-full', f('ca.pem')).options('db.example.com') ?? {}).sort(), ['ca', 'host', 'rejectUnauthorized', 'servername']);
    t.strictSame(Object.keys(leg('verify-full').options('127.0.0.1') ?? {}).sort(), ['host', 'rejectUnauthorized'], 'an IP: no servername; no server_ca_file: the system CAs');
    t.match(serverLegOptions({ ...BASE, server: 'verify-full', serverCaFile: f('ca.pem') }, 'localhost'), { servername: 'localhost', host: 'localhost', ca: Buffer });

    t.ok(leg('verify-full', f('ca.pem')).equals(leg('verify-full', f('ca.pem'))), 'the same CA bytes');
    t.notOk(leg('verify-full', f('ca.pem')).equals(leg('verify-full', f('other-ca.pem'))));
    t.notOk(leg('verify-full', f('ca.pem')).equals(leg('verify-ca', f('ca.pem'))));
    t.notOk(leg('verify-full', f('ca.pem')).equals(leg('verify-full')));
    t.ok(leg('require').equals(leg('require')));
  });

  t.test('the server leg in handshakes: verify-full checks the name, or an IP against the IP SANs', async (t) => {
    const serving = (name: string) => ({ isServer: true, secureContext: tls.createSecureContext({ cert: readFileSync(f(`${name}.pem`)), key: readFileSync(f(`${name}.key`)) }) });
    const full = ServerLegTls.load({ ...BASE, server: 'verify-full', serverCaFile: f('ca.pem') });
    t.match(await handshake(t, serving('server'), full.options('localhost')!), { ok: true }, 'by name');
    t.match(await handshake(t, serving('server'), full.options('127.0.0.1')!), { ok: true }, 'by IP: the certificate has IP:127.0.0.1');
    t.match(await handshake(t, serving('name-only'), full.options('127.0.0.1')!), { ok: false, error: 'ERR_TLS_CERT_ALTNAME_INVALID' }, 'by IP, the certificate names only localhost');
    t.match(await handshake(t, serving('server'), full.options('db.example.com')!), { ok: false, error: 'ERR_TLS_CERT_ALTNAME_INVALID' }, 'another name');
    t.match(await handshake(t, serving('stranger'), full.options('localhost')!), { ok: false }, 'signed by another CA');
    const system = ServerLegTls.load({ ...BASE, server: 'verify-full' });
    t.match(await handshake(t, serving('server'), system.options('localhost')!), { ok: false }, 'without server_ca_file the system CAs do not know the test CA');

    const ca = ServerLegTls.load({ ...BASE, server: 'verify-ca', serverCaFile: f('ca.pem') });
    t.match(await handshake(t, serving('server'), ca.options('db.example.com')!), { ok: true }, 'verify-ca: any name');
    t.match(await handshake(t, serving('stranger'), ca.options('localhost')!), { ok: false }, 'verify-ca: but the right CA');
    const require = ServerLegTls.load({ ...BASE, server: 'require' });
    t.match(await handshake(t, serving('stranger'), require.options('localhost')!), { ok: true }, 'require: encrypted, nothing checked');
  });
}
