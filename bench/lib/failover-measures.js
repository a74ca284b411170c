// Two measurements of bench/failover beside the trials themselves:
//   promotionTimes  when the promoted server itself received the promote request and when it was
//                   done (its own log, `log_line_prefix = '%n …'`: Unix epoch with milliseconds),
//                   so the proxy's share of the outage starts at the server's moment, not at the
//                   moment `pg_ctl promote -w` (which polls every 100 ms) and a confirming query
//                   returned to the benchmark;
//   watchCost       what pgwarden's failover watch costs: checks and role polls per second and
//                   the proxy's CPU, with a healthy primary and during a gap that lasts (the
//                   primary stopped, nothing promoted), read from /metrics and /proc.
'use strict';
const { mkdtempSync, readFileSync, rmSync } = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { PgCluster } = require('../../dist/harness/cluster');
const { sleep, waitUntil } = require('./failover-procs');
const { cpuMeter } = require('./perf-proc');
const { startPgwarden } = require('./failover-targets');

/** Settings for the bench clusters: log lines stamped with the epoch in ms (PostgreSQL 10+ `%n`). */
const CLUSTER_SETTINGS = { log_line_prefix: '%n [%p] ' };

/**
 * From a server log written with CLUSTER_SETTINGS: the epoch ms of the last "received promote
 * request" and of the "database system is ready to accept connections" after it (the postmaster
 * logs it once the startup process has finished the promotion: pg_is_in_recovery() is false by
 * then). Either may be undefined (no promotion in this log).
 */
function promotionTimes(logFile) {
  let text;
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return {};
  }
  const lines = text.split('\n');
  const at = (line) => {
    const m = /^(\d{9,}\.\d{3}) /.exec(line);
    return m ? Math.round(Number(m[1]) * 1000) : undefined;
  };
  let requestedAt;
  let doneAt;
  for (const line of lines) {
    if (/received promote request/.test(line)) {
      requestedAt = at(line);
      doneAt = undefined;
    } else if (requestedAt !== undefined && doneAt === undefined && /database system is ready to accept connections/.test(line)) {
      doneAt = at(line);
    }
  }
  return { requestedAt, doneAt };
}

/** Sum of every series of `name` in a Prometheus text exposition. */
function metricSum(text, name) {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** Checks/s, role polls/s and pgwarden's CPU (% of one core) over `seconds`. */
async function window(target, seconds) {
  const before = await target.metrics();
  const cpu = cpuMeter(target.pid);
  await sleep(seconds * 1000);
  const used = cpu.stop();
  const after = await target.metrics();
  const rate = (name) => Number(((metricSum(after, name) - metricSum(before, name)) / used.wallSeconds).toFixed(1));
  return { checksPerSecond: rate('pgwarden_checks_total'), pollsPerSecond: rate('pgwarden_role_polls_total'), cpuPercent: Number(used.cpuPercent.toFixed(2)), seconds: Number(used.wallSeconds.toFixed(1)) };
}

/**
 * pgwarden (defaults, admin API on for /metrics) in front of a primary and one replica: a window
 * with the primary healthy, then the primary stopped (-m immediate) and nothing promoted, and a
 * window in that gap, after pgwarden marked the primary down.
 */
async function watchCost({ seconds = 10, tempDirs } = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgwarden-bench-watch-'));
  tempDirs?.add(dir);
  let cluster;
  let target;
  try {
    cluster = await PgCluster.create({ replicas: 1, settings: CLUSTER_SETTINGS });
    const [primary] = cluster.nodes;
    target = await startPgwarden(cluster, dir, { admin: true });
    await target.ready();
    await sleep(2000);
    const healthy = await window(target, seconds);
    await cluster.stop(primary, 'immediate');
    await waitUntil('pgwarden to mark the stopped primary down', () => target.downs.length > 0, 15_000);
    await sleep(1000);
    const gap = await window(target, seconds);
    return { healthy, gap };
  } catch (err) {
    return { error: err.message, output: target?.tail() };
  } finally {
    await target?.stop();
    await cluster?.destroy();
    rmSync(dir, { recursive: true, force: true });
    tempDirs?.delete(dir);
  }
}

module.exports = { CLUSTER_SETTINGS, promotionTimes, watchCost };
