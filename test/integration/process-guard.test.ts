// The process-wide policy for errors nobody caught, in the built program (run `npm run build`
// first, like cli.test.ts): a child node process runs `pgwarden --config FILE` through the CLI's
// main() — the same code path as the installed binary — and, once the proxy listens, provokes
// the case itself (pgwarden has no backdoor for it). An unhandled rejection is logged and the
// proxy keeps serving until SIGTERM stops it cleanly (exit 0); an uncaught exception is logged
// and the process exits 1 without waiting for a shutdown. No PostgreSQL is needed: the backend
// is a closed port.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { freePort } from '../../src/harness/ports';

const CLI = path.join(__dirname, '..', '..', 'dist', 'cli.js');

// The child: run the CLI's main() as dist/cli.js would, wait until the rw listener accepts a
// connection, then do what MODE says. Its stdout is pgwarden's JSON log.
const CHILD = `
const net = require('node:net');
const { main } = require(process.env.CLI);
const port = Number(process.env.RW_PORT);
main(['--config', process.env.CONFIG]).then((code) => {
  process.exitCode = code;
  setTimeout(() => process.exit(code), 500).unref();
});
function accepts() {
  return new Promise((resolve) => {
    const attempt = () => {
      const s = net.connect(port, '127.0.0.1');
      s.on('connect', () => { s.destroy(); resolve(); });
      s.on('error', () => setTimeout(attempt, 50));
    };
    attempt();
  });
}
accepts().then(() => {
  if (process.env.MODE === 'reject') {
    Promise.reject(new Error('test: a rejection nobody handles'));
    Promise.reject('test: a plain string');
    // Still serving after both were logged: the listener takes a connection, then a clean stop.
    setTimeout(() => accepts().then(() => process.kill(process.pid, 'SIGTERM')), 0);
  } else {
    setTimeout(() => { throw new Error('test: an exception nobody catches'); }, 0);
  }
});
`;

interface Run {
  code: number | null;
  lines: Record<string, unknown>[];
  stderr: string;
}

async function runChild(t: Test, mode: 'reject' | 'throw'): Promise<Run> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgwarden-guard-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const rw = await freePort();
  const closed = await freePort(); // nothing listens there: the backend is simply down
  const config = path.join(dir, 'pgwarden.yaml');
  writeFileSync(
    config,
    `listeners:
  - { name: rw, bind: "127.0.0.1:${rw}", route: primary }
backends:
  - { name: pg1, host: 127.0.0.1, port: ${closed}, role: primary }
health: { check: tcp }
proxy: { shutdown_timeout: 1s }
`,
  );
  const child = spawn(process.execPath, ['-e', CHILD], {
    env: { ...process.env, CLI, CONFIG: config, RW_PORT: String(rw), MODE: mode },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  clearTimeout(killer);
  const lines = out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { code, lines, stderr };
}

t.test('an unhandled rejection is logged at error level with its stack, and pgwarden keeps serving', async (t) => {
  const r = await runChild(t, 'reject');
  const logged = r.lines.filter((l) => l.event === 'process.unhandled_rejection');
  t.equal(logged.length, 2, 'both rejections are logged', { stderr: r.stderr });
  const [withError, withString] = logged;
  t.match(withError, { level: 'error', err: { type: 'Error', message: 'test: a rejection nobody handles', stack: /test: a rejection nobody handles\n\s+at / }, msg: /unhandled promise rejection .*keeps serving.*: test: a rejection nobody handles/ });
  t.match(withString, { level: 'error', reason: "'test: a plain string'" }, 'a rejection with no Error is logged as its value');
  t.ok(r.lines.some((l) => l.event === 'shutdown.done'), 'the proxy stopped cleanly on SIGTERM afterwards', { events: r.lines.map((l) => l.event) });
  t.equal(r.code, 0, 'exit status 0');
  t.notMatch(r.stderr, /UnhandledPromiseRejection|triggerUncaughtException/, "not Node's default crash");
});

t.test('an uncaught exception is logged with its stack, and the process exits 1', async (t) => {
  const r = await runChild(t, 'throw');
  const logged = r.lines.filter((l) => l.event === 'process.uncaught_exception');
  t.equal(logged.length, 1, 'logged once', { stderr: r.stderr, events: r.lines.map((l) => l.event) });
  t.match(logged[0], { level: 'fatal', origin: 'uncaughtException', err: { type: 'Error', message: 'test: an exception nobody catches', stack: /test: an exception nobody catches\n\s+at / }, msg: /uncaught exception .*exits with status 1/ });
  t.equal(r.code, 1, 'exit status 1');
  t.notOk(r.lines.some((l) => l.event === 'shutdown.done'), 'it does not drain and serve on from unknown state');
});
