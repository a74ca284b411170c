// Hot reload: SIGHUP and POST /reload re-read the config; a bad config is rejected and the running
// one stays; backends and listeners are added, removed, changed; sessions on unchanged backends
// are untouched; a removed backend is drained. Also the operator verbs of the CLI end to end.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { App } from '../../src/app';
import { loadConfigFile } from '../../src/config/load';
import { createLogger } from '../../src/logger';
import { freePort } from '../../src/harness/ports';
import type { PgNode } from '../../src/harness/cluster';
import { startCluster } from '../helpers/cluster';
import { CHECK_USER, connect, waitFor, whoAnswers } from '../helpers/proxy';

const CLI = path.join(__dirname, '..', '..', 'dist', 'cli.js');
const TOKEN = 'reload-test-token-7c1';

function yaml(ports: { rw: number; ro: number; any?: number; admin?: number }, nodes: readonly PgNode[], extra = '') {
  return `
listeners:
  - { name: rw, bind: "127.0.0.1:${ports.rw}", route: primary }
  - { name: ro, bind: "127.0.0.1:${ports.ro}", route: replica }
${ports.any ? `  - { name: all, bind: "127.0.0.1:${ports.any}", route: any }` : ''}
backends:
${nodes.map((n) => `  - { name: ${n.name}, host: 127.0.0.1, port: ${n.port} }`).join('\n')}
health:
  user: ${CHECK_USER.name}
  password_env: CHECK_PW
  interval: 300ms
  fast_interval: 100ms
${ports.admin ? `admin:\n  bind: "127.0.0.1:${ports.admin}"\n  token_env: ADMIN_TOKEN\n` : ''}${extra}`;
}

t.test('reload in process', async (t) => {
  const cluster = await startCluster(t, { replicas: 2, checkUser: CHECK_USER });
  const [pg1, pg2, pg3] = cluster.nodes;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgwarden-reload-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'pgwarden.yaml');
  const env = { ...process.env, CHECK_PW: CHECK_USER.password };
  const ports = { rw: await freePort(), ro: await freePort() };
  writeFileSync(file, yaml(ports, [pg1, pg2]));
  const app = new App(loadConfigFile(file, env), createLogger('silent'), { loadConfig: () => loadConfigFile(file, env) });
  await app.start();
  t.teardown(() => app.stop(0));
  await waitFor('pg1 and pg2 up', () => app.topology.get('pg1')?.state === 'up' && app.topology.get('pg2')?.state === 'up');
  const kept = await connect(ports.ro);
  t.equal(Number((await kept.query('select inet_server_port() p')).rows[0].p), pg2.port);

  t.test('a bad config is rejected and the running one stays', async (t) => {
    writeFileSync(file, yaml(ports, [pg1, pg2, pg3]).replace('fast_interval', 'fast_intervall'));
    const r = await app.reload();
    t.equal(r.ok, false);
    t.match(r.error, /fast_intervall/);
    t.equal(app.topology.get('pg3'), undefined, 'nothing changed');
    t.ok(app.status().events.some((e) => e.event === 'config.reload' && e.level === 'error'));
  });

  t.test('add a backend and a listener, change a listener: unchanged sessions untouched', async (t) => {
    const any = await freePort();
    writeFileSync(file, yaml({ ...ports, any }, [pg1, pg2, pg3]).replace('route: replica }', 'route: replica, balance: leastconn }'));
    const r = await app.reload();
    t.equal(r.ok, true, r.error ?? 'reloaded');
    t.match(r.changes, ['backend pg3 added (127.0.0.1:' + pg3.port + ')', 'listener all added (127.0.0.1:' + any + ')', 'listener ro changed']);
    await waitFor('pg3 up', () => app.topology.get('pg3')?.state === 'up');
    t.equal(app.listener('ro').config.balance, 'leastconn');
    const seen = new Set<number>();
    for (let i = 0; i < 6; i++) seen.add((await whoAnswers(ports.ro)).port);
    t.ok(seen.has(pg3.port), 'the new backend takes sessions');
    t.ok((await whoAnswers(any)).port > 0, 'the new listener serves');
    t.equal(Number((await kept.query('select inet_server_port() p')).rows[0].p), pg2.port, 'the kept session on pg2 still works');
  });

  t.test('remove a backend: drained (its session stays), no new sessions, forgotten when empty', async (t) => {
    writeFileSync(file, yaml(ports, [pg1, pg3]));
    const r = await app.reload();
    t.equal(r.ok, true, r.error ?? 'reloaded');
    t.match((r.changes ?? []).join('\n'), /backend pg2 removed \(drained\)/);
    for (let i = 0; i < 4; i++) t.equal((await whoAnswers(ports.ro)).port, pg3.port, 'no new session on pg2');
    t.equal(Number((await kept.query('select 1 as one')).rows[0].one), 1, 'the existing pg2 session stays');
    await kept.end();
    await waitFor('pg2 forgotten', () => app.topology.get('pg2') === undefined);
  });
});

t.test('SIGHUP, POST /reload and the CLI verbs against a running pgwarden', async (t) => {
  const cluster = await startCluster(t, { replicas: 1, checkUser: CHECK_USER });
  const [pg1, pg2] = cluster.nodes;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgwarden-sighup-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'pgwarden.yaml');
  const ports = { rw: await freePort(), ro: await freePort(), admin: await freePort() };
  writeFileSync(file, yaml(ports, [pg1]));
  const env = { ...process.env, CHECK_PW: CHECK_USER.password, ADMIN_TOKEN: TOKEN };
  const child = spawn(process.execPath, [CLI, '--config', file], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  t.teardown(() => child.kill('SIGKILL'));
  const status = async () => (await fetch(`http://127.0.0.1:${ports.admin}/status`)).json() as Promise<{ backends: { name: string; state: string; adminState: string }[] }>;
  await waitFor('pg1 up', async () => (await status()).backends.some((b) => b.name === 'pg1' && b.state === 'up'), 20_000);

  writeFileSync(file, yaml(ports, [pg1, pg2]));
  child.kill('SIGHUP');
  await waitFor('pg2 added by SIGHUP and up', async () => (await status()).backends.some((b) => b.name === 'pg2' && b.state === 'up'));
  t.equal((await whoAnswers(ports.ro)).port, pg2.port);

  writeFileSync(file, yaml(ports, [pg1, pg2]) + 'bogus: 1\n');
  const bad = await fetch(`http://127.0.0.1:${ports.admin}/reload`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
  t.equal(bad.status, 400, 'POST /reload of a bad config: 400');
  t.match(await bad.text(), /bogus/);
  t.equal((await status()).backends.length, 2, 'the running config stays');

  const cli = (args: string[]) =>
    promisify(execFile)(process.execPath, [CLI, ...args], { env, timeout: 30_000 }).then(
      (r) => ({ code: 0, stdout: r.stdout }),
      (e) => ({ code: e.code as number, stdout: String(e.stdout) + String(e.stderr) }),
    );
  writeFileSync(file, yaml(ports, [pg1, pg2]));
  const st = await cli(['status', '--config', file]);
  t.equal(st.code, 0, st.stdout);
  t.match(st.stdout, /pg1/);
  t.match(st.stdout, /pg2/);
  t.equal((await cli(['drain', 'pg2', '--config', file])).code, 0);
  t.equal((await status()).backends.find((b) => b.name === 'pg2')!.adminState, 'drain');
  t.equal((await cli(['ready', 'pg2', '--config', file])).code, 0);
  t.equal((await status()).backends.find((b) => b.name === 'pg2')!.adminState, 'ready');
  t.not((await cli(['drain', 'nope', '--config', file])).code, 0, 'unknown backend: non-zero exit');
  t.equal((await cli(['reload', '--config', file])).code, 0);
  t.notMatch(out, TOKEN, 'the token never reaches the log');
});
