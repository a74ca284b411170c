// The Patroni side of bench/failover-patroni: HAProxy configured the way Patroni's documentation
// shows it (Patroni's haproxy.cfg: an HTTP check of each node's REST API, only the node whose
// GET /primary answers 200 takes sessions), and the moments read from a node's log, where
// Patroni's PostgreSQL writes lines stamped with the epoch in ms once `usePreciseLogPrefix` has
// set `log_line_prefix` through Patroni's own dynamic configuration.
'use strict';
const { readFileSync, writeFileSync } = require('node:fs');
const path = require('node:path');
const { freePort } = require('../../dist/harness/ports');
const { spawnLogged, waitForPort, waitUntil } = require('./failover-procs');
const { parseStat, statsCommand } = require('./failover-targets');

const LOG_LINE_PREFIX = '%n [%p] ';

/**
 * Patroni's haproxy.cfg (its repository's haproxy.cfg and the "HAProxy" part of its
 * documentation): `retries 2`, `timeout connect 4s`, `timeout check 5s`, `option httpchk OPTIONS
 * /primary`, `http-check expect status 200`, `default-server inter 3s fall 3 rise 2
 * on-marked-down shutdown-sessions`, one server per node checked on its REST port. Only the
 * stats socket (for readiness) and the log to stdout (for the DOWN/UP times) are ours.
 */
function haproxyPatroniConfig({ port, socket, nodes }) {
  return `global
  log stdout format raw local0
  stats socket ${socket} mode 600 level admin
  maxconn 2000

defaults
  log global
  mode tcp
  retries 2
  timeout client 30m
  timeout connect 4s
  timeout server 30m
  timeout check 5s

listen pg_rw
  bind 127.0.0.1:${port}
  option httpchk OPTIONS /primary
  http-check expect status 200
  default-server inter 3s fall 3 rise 2 on-marked-down shutdown-sessions
${nodes.map((n) => `  server ${n.name} 127.0.0.1:${n.port} maxconn 200 check port ${n.restPort}`).join('\n')}
`;
}

/**
 * HAProxy in front of the Patroni cluster. `events` are its "Server pg_rw/<node> is DOWN|UP"
 * lines with the time they arrived (no timestamp in the raw format; a pipe on this machine).
 * `ready(leader)` waits until the leader is UP on a passed check and every other node DOWN.
 */
async function startHaproxyPatroni(cluster, dir) {
  const port = await freePort();
  const socket = path.join(dir, 'haproxy.sock');
  const config = path.join(dir, 'haproxy.cfg');
  writeFileSync(config, haproxyPatroniConfig({ port, socket, nodes: cluster.nodes }));
  const target = { name: 'haproxy', port, events: [] };
  const proc = spawnLogged('haproxy', 'haproxy', ['-db', '-f', config], {
    onLine(line, _stream, receivedAt) {
      const m = /Server pg_rw\/(\S+) is (DOWN|UP)/.exec(line);
      if (m) target.events.push({ at: receivedAt, backend: m[1], event: m[2] === 'UP' ? 'up' : 'down' });
    },
  });
  target.stop = () => proc.stop();
  target.tail = () => proc.tail();
  target.ready = async (leader, timeoutMs = 30_000) => {
    await waitForPort(port, { what: 'haproxy listener', exited: proc.exited });
    await waitUntil(
      `haproxy to see ${leader.name} UP and the other nodes DOWN`,
      async () => {
        const rows = parseStat(await statsCommand(socket, 'show stat')).filter((r) => r.pxname === 'pg_rw' && cluster.nodes.some((n) => n.name === r.svname));
        return rows.length === cluster.nodes.length && rows.every((r) => (r.svname === leader.name ? r.status === 'UP' && r.check_status === 'L7OK' : r.status.startsWith('DOWN')));
      },
      timeoutMs,
    );
  };
  return target;
}

/**
 * Sets `log_line_prefix` through Patroni (`patronictl edit-config -p`, a YAML value, so quoted; its dynamic
 * configuration in the DCS, which every node applies with a reload) and waits until every
 * node's PostgreSQL reports it.
 */
async function usePreciseLogPrefix(cluster) {
  await cluster.patronictl(['edit-config', '--force', '-p', `log_line_prefix=${JSON.stringify(LOG_LINE_PREFIX)}`]);
  for (const node of cluster.nodes) {
    await waitUntil(`${node.name}: log_line_prefix '${LOG_LINE_PREFIX}'`, async () => {
      try {
        const [row] = await cluster.query(node, 'SHOW log_line_prefix');
        return row.log_line_prefix === LOG_LINE_PREFIX;
      } catch {
        return false;
      }
    });
  }
}

/**
 * The epoch ms of the first line of `logFile` at or after `since` that matches `pattern`, among
 * PostgreSQL's lines (stamped by LOG_LINE_PREFIX; Patroni's own lines carry a date and are
 * skipped), or undefined.
 */
function logTime(logFile, pattern, since) {
  let text;
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const m = /^(\d{9,}\.\d{3}) /.exec(line);
    if (!m) continue;
    const at = Math.round(Number(m[1]) * 1000);
    if (at >= since && pattern.test(line)) return at;
  }
  return undefined;
}

/** When `logFile`'s server was asked to promote and when it was ready as a primary, both at or after `since`. */
function promotionSince(logFile, since) {
  const requestedAt = logTime(logFile, /received promote request/, since);
  const doneAt = requestedAt === undefined ? undefined : logTime(logFile, /database system is ready to accept connections/, requestedAt);
  return { requestedAt, doneAt };
}

module.exports = { haproxyPatroniConfig, startHaproxyPatroni, usePreciseLogPrefix, logTime, promotionSince };
