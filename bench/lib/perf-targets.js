// The proxies under test, each a separate process on a free port in front of the same primary:
// pgwarden (dist/cli.js), HAProxy in `mode tcp` and PgBouncer in session mode; pgwarden and
// PgBouncer also with TLS to their clients (`tls`: the certificate of perf-tls.js) and plain text
// to the server. A proxy whose binary is not installed is reported as missing, never replaced by
// something else.
'use strict';
const { execFileSync } = require('node:child_process');
const { chmodSync, existsSync, writeFileSync } = require('node:fs');
const path = require('node:path');
const { freePort } = require('../../dist/harness/ports');
const { isRoot, postgresUserIds } = require('../../dist/harness/run');
const { hardFdLimit, spawnServer, waitForPort } = require('./perf-proc');

const CLI = path.join(__dirname, '..', '..', 'dist', 'cli.js');

/** Absolute path of an installed program, or undefined. */
function findProgram(name) {
  for (const dir of ['/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin']) {
    if (existsSync(path.join(dir, name))) return path.join(dir, name);
  }
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`]).toString().trim() || undefined;
  } catch {
    return undefined;
  }
}

function programVersion(file, args, pattern) {
  try {
    const out = execFileSync(file, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
    return pattern.exec(out)?.[1] ?? out.split('\n')[0];
  } catch (e) {
    return pattern.exec(String(e.stdout ?? ''))?.[1] ?? 'unknown';
  }
}

/**
 * pgwarden with one `route: primary` listener and every given backend (the first is the
 * primary; the replica is there because a real deployment has one and its checks run too).
 * `health` is the body of the health section (YAML, indented two spaces). With `tls`
 * ({certFile, keyFile}) it terminates its clients' TLS (`tls.mode: terminate`) and speaks
 * plain text to the server (`tls.server: disable`); plain-text clients are still served.
 */
async function startPgwarden(dir, backends, { health = '  user: postgres', file = 'pgwarden.yaml', tls, extra = '' } = {}) {
  const port = await freePort();
  const cfg = path.join(dir, file);
  writeFileSync(
    cfg,
    `listeners:\n  - { name: rw, bind: "127.0.0.1:${port}", route: primary, max_connections: 0 }\n` +
      `backends:\n${backends.map((b) => `  - { name: ${b.name}, host: 127.0.0.1, port: ${b.port} }`).join('\n')}\n` +
      `health:\n${health}\n` +
      // 10,000 idle sessions are opened 64 at a time; the queue must not reject them.
      `failover:\n  queue_size: 20000\n` +
      (tls ? `tls:\n  mode: terminate\n  cert_file: ${tls.certFile}\n  key_file: ${tls.keyFile}\n  server: disable\n` : '') +
      extra +
      `logging:\n  level: warn\n`,
  );
  const server = spawnServer('pgwarden', process.execPath, [CLI, '--config', cfg]);
  await waitForPort(port, server);
  return { name: 'pgwarden', port, server, version: require('../../package.json').version, tls: tls !== undefined };
}

/**
 * HAProxy, `mode tcp`, one server; maxconn as high as the open-file limit allows (2 fds per
 * session). With `checks` it instead has those servers under `option pgsql-check` every
 * `intervalMs` (the health-check cost comparison), still answering on its port.
 */
async function startHaproxy(dir, primaryPort, checks) {
  const bin = findProgram('haproxy');
  if (bin === undefined) return { name: 'haproxy', missing: 'haproxy is not installed (apt-get install haproxy)' };
  const port = await freePort();
  const maxconn = Math.floor((hardFdLimit() - 200) / 2);
  const cfg = path.join(dir, 'haproxy.cfg');
  writeFileSync(
    cfg,
    `global\n  maxconn ${maxconn}\n  log stderr format short local0 warning\n\n` +
      `defaults\n  mode tcp\n  log global\n  maxconn ${maxconn}\n  timeout connect 5s\n  timeout client 1h\n  timeout server 1h\n\n` +
      `frontend pg\n  bind 127.0.0.1:${port}\n  default_backend primary\n\n` +
      (checks
        ? `backend primary\n  option pgsql-check user postgres\n  timeout check 1s\n` +
          checks.backends.map((b) => `  server ${b.name} 127.0.0.1:${b.port} check inter ${checks.intervalMs} fastinter ${checks.intervalMs} downinter ${checks.intervalMs}\n`).join('')
        : `backend primary\n  server pg1 127.0.0.1:${primaryPort} maxconn ${maxconn}\n`),
  );
  const server = spawnServer('haproxy', bin, ['-db', '-f', cfg]);
  await waitForPort(port, server);
  return { name: 'haproxy', port, server, version: programVersion(bin, ['-v'], /version (\S+)/), maxSessions: maxconn };
}

/**
 * PgBouncer in session mode. It refuses to run as root, so when we are root it runs as the
 * postgres OS user (the config directory must then be readable by it). pool_size covers
 * pgbench -c 64; max_client_conn covers the 10,000 idle sessions, which in session mode need a
 * server connection only once they send a query. With `tls` ({certFile, keyFile}) its clients
 * must use TLS (`client_tls_sslmode = require`) and the server leg stays plain text (PgBouncer's
 * `server_tls_sslmode` defaults to disable).
 */
async function startPgbouncer(dir, primaryPort, { poolSize = 80, tls } = {}) {
  const bin = findProgram('pgbouncer');
  if (bin === undefined) return { name: 'pgbouncer', missing: 'pgbouncer is not installed (apt-get install pgbouncer)', tls: tls !== undefined };
  const port = await freePort();
  const cfg = path.join(dir, 'pgbouncer.ini');
  const users = path.join(dir, 'pgbouncer-users.txt');
  writeFileSync(users, '"postgres" ""\n');
  writeFileSync(
    cfg,
    `[databases]\npostgres = host=127.0.0.1 port=${primaryPort} dbname=postgres\n\n` +
      `[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = ${port}\nunix_socket_dir =\n` +
      `auth_type = trust\nauth_file = ${users}\npool_mode = session\n` +
      `default_pool_size = ${poolSize}\nmax_client_conn = 11000\nmax_db_connections = 0\n` +
      `ignore_startup_parameters = extra_float_digits,application_name\n` +
      `log_connections = 0\nlog_disconnections = 0\nlog_pooler_errors = 1\nverbose = 0\n` +
      (tls ? `client_tls_sslmode = require\nclient_tls_key_file = ${tls.keyFile}\nclient_tls_cert_file = ${tls.certFile}\n` : ''),
  );
  let user;
  if (isRoot()) {
    user = postgresUserIds();
    chmodSync(dir, 0o755);
    // The key too: a throw-away key in the run's temp dir, which PgBouncer (as postgres) must read.
    for (const f of [cfg, users, ...(tls ? [tls.certFile, tls.keyFile] : [])]) chmodSync(f, 0o644);
  }
  const server = spawnServer('pgbouncer', bin, [cfg], { user });
  await waitForPort(port, server);
  return { name: 'pgbouncer', port, server, version: programVersion(bin, ['--version'], /PgBouncer (\S+)/), tls: tls !== undefined };
}

module.exports = { findProgram, startPgwarden, startHaproxy, startPgbouncer };
