// A certificate authority made for one test with openssl (EC keys: milliseconds each), and the
// certificates it issues. Everything lives in a temp dir removed in t.teardown.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';

export interface Issued {
  readonly certFile: string;
  readonly keyFile: string;
}

export interface TestCa {
  readonly dir: string;
  readonly caFile: string;
  /** A certificate for `cn` with these subjectAltNames (e.g. ['DNS:localhost', 'IP:127.0.0.1']). */
  issue(name: string, cn: string, sans: readonly string[]): Issued;
}

export function opensslMissing(): string | undefined {
  return spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0 ? undefined : 'openssl is not installed';
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export function makeTestCa(t: Test, label = 'ca'): TestCa {
  const dir = mkdtempSync(join(tmpdir(), `pgwarden-${label}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const caFile = join(dir, 'ca.crt');
  const caKey = join(dir, 'ca.key');
  execFileSync('openssl', ['req', '-x509', ...EC, '-days', '2', '-subj', `/CN=pgwarden test ${label}`, '-keyout', caKey, '-out', caFile], { stdio: 'ignore' });
  let serial = 1;
  return {
    dir,
    caFile,
    issue(name, cn, sans) {
      const keyFile = join(dir, `${name}.key`);
      const csr = join(dir, `${name}.csr`);
      const certFile = join(dir, `${name}.crt`);
      const ext = join(dir, `${name}.ext`);
      writeFileSync(ext, `subjectAltName=${sans.join(',')}\n`);
      execFileSync('openssl', ['req', '-new', ...EC, '-subj', `/CN=${cn}`, '-keyout', keyFile, '-out', csr], { stdio: 'ignore' });
      execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-set_serial', String(++serial), '-days', '2', '-extfile', ext, '-out', certFile], { stdio: 'ignore' });
      chmodSync(keyFile, 0o600); // libpq refuses a client key others can read
      return { certFile, keyFile };
    },
  };
}
