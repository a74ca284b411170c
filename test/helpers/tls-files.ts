// Certificates for TLS tests, made by the openssl CLI in a directory of the test's own: a CA, a
// second CA, certificates they signed, and files that are wrong on purpose. EC keys: generating
// one takes milliseconds where RSA takes a noticeable fraction of a second.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Why TLS tests cannot run here, or undefined when openssl is on the PATH. */
export function opensslMissing(): string | undefined {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'openssl not found: these tests make their certificates with the openssl CLI';
  }
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export interface TlsTestFiles {
  readonly dir: string;
  /** The path of a file in `dir`. */
  f(name: string): string;
}

/**
 * In `dir`: ca.pem/.key and other-ca.pem/.key; server.pem/.key (CN=localhost, SANs localhost and
 * 127.0.0.1, by ca); name-only.pem/.key (SAN localhost only, by ca); client.pem/.key (CN=app, by
 * ca); stranger.pem/.key (CN=app, by other-ca); encrypted.key (PKCS#8) and encrypted-legacy.key
 * (Proc-Type) of server.key; garbage.pem.
 */
export function makeTlsFiles(dir: string): TlsTestFiles {
  const f = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ca = (name: string, cn: string) => openssl('req', '-x509', ...EC, '-days', '2', '-subj', `/CN=${cn}`, '-keyout', f(`${name}.key`), '-out', f(`${name}.pem`));
  const signed = (name: string, cn: string, by: string, san?: string) => {
    openssl('req', '-new', ...EC, '-subj', `/CN=${cn}`, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`));
    const ext: string[] = [];
    if (san !== undefined) {
      writeFileSync(f(`${name}.ext`), `subjectAltName=${san}\n`);
      ext.push('-extfile', f(`${name}.ext`));
    }
    openssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f(`${by}.pem`), '-CAkey', f(`${by}.key`), '-CAcreateserial', '-days', '2', '-out', f(`${name}.pem`), ...ext);
  };
  ca('ca', 'pgwarden-test-ca');
  ca('other-ca', 'another-ca');
  signed('server', 'localhost', 'ca', 'DNS:localhost,IP:127.0.0.1');
  signed('name-only', 'localhost', 'ca', 'DNS:localhost');
  signed('client', 'app', 'ca');
  signed('stranger', 'app', 'other-ca');
  openssl('pkey', '-in', f('server.key'), '-aes256', '-passout', 'pass:secret', '-out', f('encrypted.key'));
  openssl('ec', '-in', f('server.key'), '-aes256', '-passout', 'pass:secret', '-out', f('encrypted-legacy.key'));
  writeFileSync(f('garbage.pem'), 'not a certificate\n');
  return { dir, f };
}
