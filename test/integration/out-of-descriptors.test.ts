// pgwarden out of file descriptors, in the built program (`npm run build` first, like
// cli.test.ts): `pgwarden --config FILE` runs in a child with `ulimit -n 64`, and the test fills
// its descriptor table with client connections that send nothing (one descriptor each in
// pgwarden). Then: connections it cannot accept are closed at once (Node's runtime keeps a
// spare descriptor for that) and nothing spins; a session that was accepted but cannot get a
// descriptor for its server gets FATAL 53000 instead of a retry loop; the server is not marked
// down; the shortage is logged once, not per failure; and everything works again once
// connections close. The child's descriptors are counted in /proc, so every step waits for a
// state rather than a time.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { startCluster } from '../helpers/cluster';
import { CHECK_USER, connect, waitFor } from '../helpers/proxy';
import { freePort } from '../../src/harness/ports';

const CLI = path.join(__dirname, '..', '..', 'dist', 'cli.js');
const LIMIT = 64;
/** SSLRequest (protocol docs, "SSLRequest"). */
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

const fds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;
/** CPU time (user + system) of a process, in clock ticks (/proc/PID/stat fields 14 and 15). */
function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

t.test(`pgwarden with ulimit -n ${LIMIT}: refuses what it cannot serve, never crashes or spins, recovers`, { skip: process.platform === 'linux' ? false : 'needs /proc' }, async (t) => {
  const cluster = await startCluster(t, { replicas: 0, checkUser: CHECK_USER });
  const [pg1] = cluster.nodes;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgwarden-fds-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const rw = await freePort();
  const config = path.join(dir, 'pgwarden.yaml');
  // A postgres check keeps its connection (no descriptor per check), and there is no admin
  // section: no host sampling opening files, so nothing but the test's clients takes descriptors.
  writeFileSync(
    config,
    `listeners:
  - { name: rw, bind: "127.0.0.1:${rw}", route: primary }
backends:
  - { name: pg1, host: 127.0.0.1, port: ${pg1!.port} }
health: { check: postgres, user: ${CHECK_USER.name}, password_env: TEST_CHECK_PASSWORD, interval: 300ms, fast_interval: 100ms, down_interval: 300ms, rise: 1, fall: 2 }
tls: { mode: disable }
proxy: { shutdown_timeout: 1s, client_login_timeout: 5m }
`,
  );
  const child = spawn('sh', ['-c', `ulimit -n ${LIMIT} && exec "$0" "$1" --config "$2"`, process.execPath, CLI, config], {
    env: { ...process.env, TEST_CHECK_PASSWORD: CHECK_USER.password },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  t.teardown(() => void child.kill('SIGKILL'));
  const lines = () => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  const pid = child.pid!;

  await waitFor('pg1 up and the listener ready', () => lines().some((l) => l.event === 'backend.up') && lines().some((l) => l.event === 'listener.ready'), 30_000);
  const idle = async () => {
    const c = await connect(rw);
    await c.end();
  };
  await idle(); // one full session first: whatever a session allocates once is allocated
  await waitFor('the first session gone', () => lines().some((l) => l.event === 'session.end'));
  const base = fds(pid);
  t.ok(base < LIMIT, `${base} descriptors in use before the crowd`);

  // Clients that ask for TLS (answered 'N': tls.mode disable) and then say nothing: each holds
  // one descriptor in pgwarden, and knows it was accepted, until there are none left.
  const crowd = LIMIT - base + 10;
  const held: net.Socket[] = [];
  let accepted = 0;
  let refused = 0;
  t.teardown(() => held.forEach((s) => s.destroy()));
  for (let i = 0; i < crowd; i++) {
    const s = net.connect({ host: '127.0.0.1', port: rw }, () => s.write(SSL_REQUEST));
    s.on('error', () => undefined);
    s.once('data', () => accepted++);
    s.on('close', () => refused++);
    held.push(s);
  }
  await waitFor('every client accepted or closed', () => accepted + refused === crowd && refused > 0);
  const full = fds(pid);
  t.ok(full >= LIMIT, `pgwarden holds ${full} descriptors, ${accepted} of them clients'`);
  t.ok(refused >= 1, `${refused} connections it could not accept were closed`);

  // Out of descriptors with connections knocking: no busy loop (a spinning process burns one
  // core, 100 ticks a second).
  const knock = Array.from({ length: 5 }, () => net.connect({ host: '127.0.0.1', port: rw }).on('error', () => undefined));
  const before = cpuTicks(pid);
  await new Promise((r) => setTimeout(r, 1000));
  const spent = cpuTicks(pid) - before;
  knock.forEach((s) => s.destroy());
  t.ok(spent < 50, `pgwarden used ${spent} ticks of CPU in a second while out of descriptors`);
  t.equal(child.exitCode, null, 'still running');

  // One descriptor free: a client is accepted, but its server connection cannot be opened.
  held.find((s) => !s.destroyed)!.destroy();
  await waitFor('one descriptor free in pgwarden', () => fds(pid) === full - 1);
  const err = await connect(rw).then(() => 'connected', (e: { code?: string; message?: string }) => e);
  t.match(err, { code: '53000', message: /pgwarden is out of file descriptors \(EMFILE\) and cannot open a connection to 127\.0\.0\.1:\d+/ }, 'the client is told why');

  // Descriptors back: new clients are served, the server was never marked down.
  held.forEach((s) => s.destroy());
  await waitFor('a new client served', async () => {
    const c = await connect(rw);
    const r = await c.query('select 1 as one');
    await c.end();
    return r.rows[0].one === 1;
  }, 30_000);
  const events = lines().map((l) => l.event);
  t.notOk(events.includes('backend.down'), 'pg1 never marked down');
  // Once per burst: never a second report without the end of the first in between.
  const reports = events.filter((e) => e === 'proxy.out_of_descriptors' || e === 'proxy.descriptors_back');
  t.ok(reports.length >= 1 && reports[0] === 'proxy.out_of_descriptors', 'the shortage was logged', { reports });
  t.ok(reports.every((e, i) => i === 0 || e !== reports[i - 1]), 'once per burst, not once per failure', { reports });
  t.ok(lines().filter((l) => l.event === 'session.end' && l.detail === 'PGW_OUT_OF_DESCRIPTORS').length === 1, 'the refused session ended once, as rejected');

  child.kill('SIGTERM');
  t.equal(await exited, 0, 'and it stops cleanly', { stderr });
});
