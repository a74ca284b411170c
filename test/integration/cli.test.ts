// The pgwarden program as a user runs it: `check`, bad configs, and a real run in front of a
// real cluster that stops cleanly on SIGTERM.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { startCluster } from '../helpers/cluster';
import { CHECK_USER, waitFor, whoAnswers } from '../helpers/proxy';
import { freePort } from '../../src/harness/ports';
import { makeTlsFiles, opensslMissing } from '../helpers/tls-files';

const CLI = path.join(__dirname, '..', '..', 'dist', 'cli.js');
const EXAMPLE = path.join(__dirname, '..', '..', 'config', 'example.yaml');

function cli(args: string[], env: Record<string, string> = {}) {
  return promisify(execFile)(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, timeout: 30_000 }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e) => ({ code: e.code as number, stdout: String(e.stdout), stderr: String(e.stderr) }),
  );
}

function tmpConfig(t: Test, text: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgwarden-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'pgwarden.yaml');
  writeFileSync(file, text);
  return file;
}

t.test('check prints the listeners and backends of the example', async (t) => {
  const r = await cli(['check', '--config', EXAMPLE], { PGWARDEN_CHECK_PASSWORD: 's3cret-value' });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /rw/);
  t.match(r.stdout, /ro/);
  t.match(r.stdout, /pg1/);
  t.notMatch(r.stdout, /s3cret-value/, 'never prints the password');
});

t.test('a bad config: key path, hint, exit 2, no stack trace', async (t) => {
  const file = tmpConfig(t, `listeners:\n  - { name: rw, bind: "127.0.0.1:6432", route: primary }\nbackends:\n  - { name: pg1, host: 127.0.0.1, port: 5432 }\nhealth:\n  intervall: 1s\n`);
  for (const args of [['check', '--config', file], ['--config', file]]) {
    const r = await cli(args);
    t.equal(r.code, 2);
    t.match(r.stderr, /health\.intervall/);
    t.match(r.stderr, /did you mean `interval`/);
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
  const missing = await cli(['check', '--config', '/nonexistent/pgwarden.yaml']);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /nonexistent/);
});

t.test('TLS files that cannot be used: exit 2 from check and at startup, with the key and the file', { skip: opensslMissing() ?? false }, async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgwarden-cli-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { f } = makeTlsFiles(dir);
  const config = async (cert: string, key: string) =>
    tmpConfig(t, `listeners:\n  - { name: rw, bind: "127.0.0.1:${await freePort()}", route: primary }\nbackends:\n  - { name: pg1, host: 127.0.0.1, port: 5432 }\ntls:\n  mode: terminate\n  cert_file: ${cert}\n  key_file: ${key}\n`);
  const good = await cli(['check', '--config', await config(f('server.pem'), f('server.key'))]);
  t.equal(good.code, 0, good.stderr);
  t.match(good.stdout, /\ntls certificate: CN=localhost, issued by CN=pgwarden-test-ca, valid until /);
  const wrongKey = await config(f('server.pem'), f('client.key'));
  for (const args of [['check', '--config', wrongKey], ['--config', wrongKey]]) {
    const r = await cli(args);
    t.equal(r.code, 2, args[0]);
    t.match(r.stderr, /^cannot use the TLS files the configuration names \(1 problem\):\n {2}tls\.key_file: the key in \S+client\.key does not belong to the certificate in \S+server\.pem/);
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
  const r = await cli(['--config', await config(f('nope.pem'), f('server.key'))]);
  t.equal(r.code, 2);
  t.match(r.stderr, /tls\.cert_file: cannot read \S+nope\.pem: no such file/);
});

t.test('bad usage exits 2', async (t) => {
  t.equal((await cli(['frobnicate'])).code, 2);
  t.equal((await cli(['--no-such-flag'])).code, 2);
  t.equal((await cli([])).code, 2, '--config is required');
  t.equal((await cli(['--help'])).code, 0);
});

t.test('pgwarden --config runs the proxy and stops cleanly on SIGTERM', async (t) => {
  const cluster = await startCluster(t, { replicas: 1, checkUser: CHECK_USER });
  const rw = await freePort();
  const ro = await freePort();
  const file = tmpConfig(t, `
listeners:
  - { name: rw, bind: "127.0.0.1:${rw}", route: primary }
  - { name: ro, bind: "127.0.0.1:${ro}", route: replica, fallback: primary }
backends:
${cluster.nodes.map((n) => `  - { name: ${n.name}, host: 127.0.0.1, port: ${n.port} }`).join('\n')}
health:
  user: ${CHECK_USER.name}
  password_env: CHECK_PW
  interval: 300ms
  fast_interval: 100ms
proxy:
  shutdown_timeout: 1s
`);
  const child = spawn(process.execPath, [CLI, '--config', file], { env: { ...process.env, CHECK_PW: CHECK_USER.password }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => child.kill('SIGKILL'));
  await waitFor('rw answers from the primary', async () => (await whoAnswers(rw)).port === cluster.primary.port, 20_000);
  // ro falls back to the primary until the replica has passed its rise checks: wait for it.
  await waitFor('ro answers from the replica', async () => (await whoAnswers(ro)).port === cluster.replicas[0].port, 20_000);
  t.pass('ro reaches the replica');
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'exit 0 on SIGTERM');
  const lines = out.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  t.ok(lines.some((l) => l.event === 'listener.ready' && l.listener === 'rw'), 'JSON logs');
  t.ok(lines.some((l) => l.event === 'shutdown.done'));
  t.notMatch(out, CHECK_USER.password);
});
