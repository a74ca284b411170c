// The two proxies bench/failover compares, each started as its own process in front of a
// primary + replica cluster: pgwarden with its defaults (follow mode: it routes writes to
// whichever server says it is primary), and HAProxy configured the way PostgreSQL is usually put
// behind it (pgsql-check, the replica as `backup` taking traffic once the primary is marked down).
// Each target records when it marked the old primary down (`downs`, ms since the epoch; during
// start-up on a busy machine a check may time out, so only the first one after the kill counts).
'use strict';
const { execFileSync } = require('node:child_process');
const { writeFileSync } = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { freePort } = require('../../dist/harness/ports');
const { spawnLogged, waitForPort, waitUntil } = require('./failover-procs');

const CLI = path.join(__dirname, '..', '..', 'dist', 'cli.js');

/**
 * pgwarden defaults for health and failover, except the check user; its JSON log lines carry the
 * event times. Every server of the cluster is a backend (the first is the primary). `admin: true`
 * adds the admin API on a free loopback port (target.metrics() reads /metrics, target.status()
 * /status) — for the cost measurement and for reading coordination's status after a trial.
 * bench/failover-coordinated.js runs several instances: `name` tells them apart (config file,
 * output), `failover` replaces the failover section's body and `extra` is appended (coordination:).
 * `adminToken` lets the admin API change state (POST /switchover: bench/survive.js); `onEntry`
 * gets every JSON log line, parsed (bench/survive.js counts session.moved lines).
 */
async function startPgwarden(cluster, dir, { admin = false, adminToken, name = 'pgwarden', failover = '  mode: follow', extra = '', onEntry } = {}) {
  const [primary] = cluster.nodes;
  const port = await freePort();
  const adminPort = admin ? await freePort() : undefined;
  const config = path.join(dir, `${name}.yaml`);
  writeFileSync(
    config,
    `listeners:
  - { name: rw, bind: "127.0.0.1:${port}", route: primary }
backends:
${cluster.nodes.map((n) => `  - { name: ${n.name}, host: 127.0.0.1, port: ${n.port} }`).join('\n')}
health:
  user: postgres
failover:
${failover}
logging:
  level: ${process.env.BENCH_PGWARDEN_LOG_LEVEL ?? 'info'}
${adminPort === undefined ? '' : `admin:\n  bind: "127.0.0.1:${adminPort}"\n${adminToken === undefined ? '' : `  token: "${adminToken}"\n`}`}${extra}`,
  );
  const target = { name, port, downs: [], primaryChanges: [], up: new Set(), events: [] };
  const proc = spawnLogged(name, process.execPath, [CLI, '--config', config], {
    onLine(line, stream) {
      if (stream !== 'stdout' || line[0] !== '{') return;
      let entry;
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      // pino stamps each line when it is logged; its stdout is written asynchronously, so the
      // line's own time is the moment of detection, not the time it reached us.
      const at = Date.parse(entry.time);
      onEntry?.(entry, at);
      if (entry.event === 'backend.up') target.up.add(entry.backend);
      if (entry.event === 'backend.down' && entry.backend === primary.name) target.downs.push(at);
      if (entry.event === 'primary.changed' && entry.to !== undefined && entry.to !== primary.name) target.primaryChanges.push(at);
      if (/^(backend|primary|failover|coordination)\./.test(entry.event ?? '')) target.events.push({ at, event: entry.event, backend: entry.backend, msg: entry.msg });
    },
  });
  target.stop = () => proc.stop();
  target.tail = () => proc.tail();
  target.pid = proc.child.pid;
  if (adminPort !== undefined) {
    const get = async (what) => {
      const res = await fetch(`http://127.0.0.1:${adminPort}/${what}`, { signal: AbortSignal.timeout(5000) });
      if (!res.ok) throw new Error(`${name}: GET /${what}: HTTP ${res.status}`);
      return res;
    };
    target.metrics = async () => (await get('metrics')).text();
    target.status = async () => (await get('status')).json();
    target.adminUrl = `http://127.0.0.1:${adminPort}`;
  }
  target.ready = async () => {
    await waitForPort(port, { what: `${name} rw listener`, exited: proc.exited });
    const names = cluster.nodes.map((n) => n.name);
    await waitUntil(`${name} to see ${names.join(', ')} up`, () => names.every((n) => target.up.has(n)));
  };
  return target;
}

/** `haproxy -v` first line, or undefined when HAProxy is not installed. */
function haproxyVersion() {
  try {
    return execFileSync('haproxy', ['-v'], { stdio: ['ignore', 'pipe', 'pipe'] }).toString().split('\n')[0].trim();
  } catch {
    return undefined;
  }
}

// A typical HAProxy setup for PostgreSQL: TCP mode, the pgsql-check (a startup packet; any
// authentication request or AuthenticationOk means up), `fall 3 rise 2` every second, the
// replica as a backup server, and sessions of a server marked down shut at once.
function haproxyConfig({ port, socket, primary, replica }) {
  return `global
  log stdout format raw local0
  stats socket ${socket} mode 600 level admin
  maxconn 2000

defaults
  mode tcp
  log global
  retries 3
  timeout connect 1s
  timeout client 30m
  timeout server 30m
  timeout check 1s
  default-server on-marked-down shutdown-sessions

listen pg_rw
  bind 127.0.0.1:${port}
  option pgsql-check user postgres
  server ${primary.name} 127.0.0.1:${primary.port} check inter 1s fall 3 rise 2
  server ${replica.name} 127.0.0.1:${replica.port} check inter 1s fall 3 rise 2 backup
`;
}

async function startHaproxy(cluster, dir) {
  const [primary, replica] = cluster.nodes;
  const port = await freePort();
  const socket = path.join(dir, 'haproxy.sock');
  const config = path.join(dir, 'haproxy.cfg');
  writeFileSync(config, haproxyConfig({ port, socket, primary, replica }));
  const target = { name: 'haproxy', port, downs: [], events: [] };
  const downLine = new RegExp(`Server pg_rw/${primary.name} is DOWN`);
  // -db: stay in the foreground; its log goes to our pipe. There is no timestamp in the raw
  // format, so the line's arrival time is the detection time (same machine, a pipe: ~1 ms).
  const proc = spawnLogged('haproxy', 'haproxy', ['-db', '-f', config], {
    onLine(line, _stream, receivedAt) {
      if (!/ is (DOWN|UP)/.test(line)) return;
      target.events.push({ at: receivedAt, line: line.slice(0, 200) });
      if (downLine.test(line)) target.downs.push(receivedAt);
    },
  });
  target.stop = () => proc.stop();
  target.tail = () => proc.tail();
  target.ready = async () => {
    await waitForPort(port, { what: 'haproxy listener', exited: proc.exited });
    // Both servers UP after at least one completed check each (not just the initial state).
    await waitUntil('haproxy to check pg1 and pg2 UP', async () => {
      const rows = parseStat(await statsCommand(socket, 'show stat'));
      const servers = rows.filter((r) => r.pxname === 'pg_rw' && (r.svname === primary.name || r.svname === replica.name));
      return servers.length === 2 && servers.every((s) => s.status === 'UP' && s.check_status === 'L7OK');
    });
  };
  return target;
}

/** One command on HAProxy's stats socket; resolves with its whole answer (the socket closes after it). */
function statsCommand(socket, command) {
  return new Promise((resolve) => {
    let out = '';
    const s = net.connect(socket, () => s.end(`${command}\n`));
    s.setTimeout(2000, () => s.destroy());
    s.on('data', (d) => (out += d));
    s.on('error', () => {});
    s.on('close', () => resolve(out));
  });
}

// `show stat` is CSV with a header line starting "# ".
function parseStat(csv) {
  const [header, ...lines] = csv.split('\n').filter((l) => l.trim() !== '');
  if (!header?.startsWith('# ')) return [];
  const cols = header.slice(2).split(',');
  return lines.map((line) => Object.fromEntries(line.split(',').map((v, i) => [cols[i], v])));
}

module.exports = { startPgwarden, startHaproxy, haproxyVersion, haproxyConfig, statsCommand, parseStat };
