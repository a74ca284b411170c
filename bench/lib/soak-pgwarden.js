// pgwarden as bench/soak runs it: its own process and config file (rewritten for the reload
// fault), listeners rw (primary), ro (replicas, falling back to the primary) and, with --idle,
// idle (replica route to the frozen standby), TLS terminate on every listener (clients may still
// connect in plain text), failover mode follow, and the admin API with a token: /status for the
// topology, /debug/resources for what the process holds, the state-changing routes for the
// switchover, drain/ready and reload faults.
'use strict';
const { appendFileSync, writeFileSync } = require('node:fs');
const path = require('node:path');
const { freePort } = require('../../dist/harness/ports');
const { spawnLogged, waitForPort, waitUntil } = require('./failover-procs');

const CLI = path.join(__dirname, '..', '..', 'dist', 'cli.js');
const TOKEN = 'soak-admin-token';

function renderConfig({ ports, backends, cert, idle }) {
  const lines = [
    'listeners:',
    `  - { name: rw, bind: "127.0.0.1:${ports.rw}", route: primary }`,
    `  - { name: ro, bind: "127.0.0.1:${ports.ro}", route: replica, fallback: primary }`,
  ];
  if (idle) lines.push(`  - { name: idle, bind: "127.0.0.1:${ports.idle}", route: replica, max_connections: 0 }`);
  lines.push('backends:', ...backends.map((b) => `  - { name: ${b.name}, host: ${b.host ?? '127.0.0.1'}, port: ${b.port} }`));
  lines.push(
    'health:',
    '  user: postgres',
    // Not the default 1 s: other work shares this machine, and with --idle PostgreSQL forks
    // thousands of backends while the sessions open; a check that times out `fall` times in a
    // row would mark `solo` down and close every idle session on it (on_down: shutdown-sessions).
    `  timeout: ${idle ? '10s' : '3s'}`,
    'failover:',
    '  mode: follow',
    '  drain_timeout: 5s',
    'admin:',
    `  bind: "127.0.0.1:${ports.admin}"`,
    '  token_env: PGWARDEN_SOAK_TOKEN',
    'logging:',
    `  level: ${process.env.SOAK_PGWARDEN_LOG_LEVEL ?? 'warn'}`,
  );
  if (cert) lines.push('tls:', '  mode: terminate', `  cert_file: ${cert.certFile}`, `  key_file: ${cert.keyFile}`);
  return `${lines.join('\n')}\n`;
}

/**
 * Starts pgwarden with `backends` ({name, port}); resolves once every listener accepts and every
 * backend is up. Returns the handle the soak steers it with.
 */
async function startPgwarden({ dir, backends, cert, idle, logFile }) {
  const ports = { rw: await freePort(), ro: await freePort(), admin: await freePort(), idle: idle ? await freePort() : undefined };
  const configFile = path.join(dir, 'pgwarden-soak.yaml');
  let current = backends;
  writeFileSync(configFile, renderConfig({ ports, backends, cert, idle }));
  const problems = [];
  const proc = spawnLogged('pgwarden', process.execPath, [CLI, '--config', configFile], {
    onLine(line) {
      // warn and above only: a crash's stack, a fence, a reload failure end up in the results.
      if (/"level":(50|60)/.test(line) || /Error|error:/.test(line)) problems.push(line.slice(0, 400));
      if (logFile) appendFileSync(logFile, `${line}\n`);
      if (problems.length > 200) problems.shift();
    },
  });
  // The child reads its admin token from the environment it was started with.
  const base = `http://127.0.0.1:${ports.admin}`;
  const call = async (method, what, body) => {
    const res = await fetch(`${base}${what}`, {
      method,
      headers: { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const json = await res.json().catch(() => undefined);
    return { status: res.status, json };
  };
  const pg = {
    ports,
    pid: proc.child.pid,
    exited: proc.exited,
    problems,
    tail: () => proc.tail(),
    stop: () => proc.stop(),
    alive: () => proc.child.exitCode === null && proc.child.signalCode === null,
    status: async () => (await call('GET', '/status')).json,
    resources: async () => (await call('GET', '/debug/resources')).json,
    post: (what, body) => call('POST', what, body ?? {}),
    backends: () => current,
    /** Rewrites the config file with these backends and asks for a reload. */
    async reloadWith(list) {
      current = list;
      writeFileSync(configFile, renderConfig({ ports, backends: list, cert, idle }));
      return call('POST', '/reload');
    },
  };
  await Promise.all(['rw', 'ro', ...(idle ? ['idle'] : [])].map((l) => waitForPort(ports[l], { what: `pgwarden ${l} listener`, exited: proc.exited })));
  await waitUntil('pgwarden to see every backend up', async () => {
    const s = await pg.status().catch(() => undefined);
    return s !== undefined && backends.every((b) => s.backends.some((x) => x.name === b.name && x.state === 'up'));
  });
  return pg;
}

process.env.PGWARDEN_SOAK_TOKEN = TOKEN;

module.exports = { startPgwarden, renderConfig };
