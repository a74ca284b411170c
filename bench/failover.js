#!/usr/bin/env node
// bench/failover: how long writes stop when the primary dies, through pgwarden (defaults, follow
// mode) and through HAProxy (a typical PostgreSQL setup), interleaved trial by trial. Each trial
// builds a fresh primary + replica, starts the proxy as its own process, writes through it on a
// new connection every ~20 ms (one attempt at a time, 1 s connect and query timeouts), SIGKILLs
// the primary and at once promotes the replica from outside (as an operator or orchestrator
// would), then measures:
//   detection        kill → the proxy marks the old primary down (pgwarden: `backend.down` log
//                    line; HAProxy: "Server pg_rw/pg1 is DOWN" log line)
//   promotion done   kill → the promoted server logged that it is ready (its own log, epoch ms):
//                    the orchestrator's share, no proxy can route writes there earlier
//   proxy share      promotion done → the first write committed on it through the proxy
//   first write      kill → the first write committed on the new primary through the proxy
//   failed attempts  writes that failed between the kill and that first write
// and, for pgwarden, the cost of its failover watch (checks and role polls per second, CPU) with a
// healthy primary and in a gap that lasts (bench/lib/failover-measures.js).
//
//   npm run build && node bench/failover.js [--trials 10] [--quick] [--targets pgwarden,haproxy] [--no-watch-cost]
//   node bench/failover.js --report bench/results/failover-<date>.json   (README section from saved trials)
//
// --quick runs 2 trials per target as a smoke test (raw JSON with a -quick suffix) and leaves
// bench/README.md alone. A full run writes the numbers into bench/README.md ("## Failover") and
// the raw trials into bench/results/failover-<date>.json. BENCH_PGWARDEN_LOG_LEVEL=debug gives
// pgwarden's debug lines in a failed trial's output.
'use strict';
const { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');
const { PgCluster } = require('../dist/harness/cluster');
const { killAllSync, sleep, waitUntil } = require('./lib/failover-procs');
const { startHaproxy, startPgwarden, haproxyVersion } = require('./lib/failover-targets');
const { CREATE_TABLE, WriteLoop } = require('./lib/failover-writer');
const { CLUSTER_SETTINGS, promotionTimes, watchCost } = require('./lib/failover-measures');
const { countBy, fmt, machineInfo, replaceReadmeSection, stats } = require('./lib/failover-report');

const { values } = parseArgs({
  options: {
    trials: { type: 'string', default: '10' },
    quick: { type: 'boolean', default: false },
    targets: { type: 'string', default: 'pgwarden,haproxy' },
    report: { type: 'string' },
    'no-watch-cost': { type: 'boolean', default: false },
  },
});
const trials = values.quick ? 2 : Number(values.trials);
if (!Number.isInteger(trials) || trials < 1) {
  console.error('--trials takes a positive whole number');
  process.exit(2);
}

// pgwarden's goals (issue 18), with an external promote right after the kill: its own share
// (promotion done → first write) ≤ 100 ms median; kill → first write ≤ 300 ms median, ≤ 600 ms max.
const TARGET_SHARE_MS = 100;
const TARGET_FIRST_WRITE_MS = 300;
const TARGET_FIRST_WRITE_MAX_MS = 600;
const BASELINE_MS = 500; // writes succeed this long before the kill
const AFTER_FIRST_WRITE_MS = 1000; // keep writing after recovery to catch late failures
const RECOVERY_TIMEOUT_MS = 30_000;

// Temporary directories still to remove, also when the run is interrupted.
const tempDirs = new Set();
process.on('exit', () => {
  killAllSync();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});
// Our own handlers (installed before any PgCluster) turn a signal into a normal exit, so that
// every 'exit' handler — ours and the cluster harness's — stops servers and removes files.
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(signal === 'SIGINT' ? 130 : 143));

async function main() {
  if (values.report !== undefined) {
    const saved = JSON.parse(readFileSync(values.report, 'utf8'));
    report({ ...saved, started: new Date(saved.started), jsonFile: path.resolve(values.report), writeReadmeToo: true });
    return;
  }
  const haproxy = haproxyVersion();
  const kinds = values.targets.split(',').filter((k) => k === 'pgwarden' || k === 'haproxy');
  if (haproxy === undefined && kinds.includes('haproxy')) {
    console.log('haproxy not installed: skipped');
    kinds.splice(kinds.indexOf('haproxy'), 1);
  }

  const machine = machineInfo({ haproxy: haproxy ?? 'not installed' });
  const command = `npm run build && node bench/failover.js${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}`;
  const started = new Date();
  console.log(`${trials} trial(s) per target, interleaved; ${machine.nproc} CPUs, load average ${machine.loadBefore.join(' ')}`);

  const results = Object.fromEntries(kinds.map((k) => [k, []]));
  for (let i = 0; i < trials; i++) {
    for (const kind of kinds) {
      const r = await trial(kind);
      results[kind].push(r);
      const label = `trial ${String(i + 1).padStart(2)}/${trials} ${kind.padEnd(8)}`;
      if (r.error) console.log(`${label} FAILED: ${r.error}\n  events: ${JSON.stringify(r.events)}\n  errors: ${JSON.stringify(r.errors)}`);
      else console.log(`${label} detection ${fmt(r.detectionMs)} ms, first write ${fmt(r.firstWriteMs)} ms, failed attempts ${r.failedAttempts}`);
    }
  }
  machine.loadAfter = os.loadavg().map((l) => l.toFixed(2));
  let watch;
  if (kinds.includes('pgwarden') && !values['no-watch-cost']) {
    console.log('cost of the failover watch: 10 s with a healthy primary, 10 s in a gap (primary stopped, nothing promoted)');
    watch = await watchCost({ seconds: values.quick ? 3 : 10, tempDirs });
    console.log(JSON.stringify(watch));
  }

  const date = started.toISOString().slice(0, 10);
  const resultsDir = path.join(__dirname, 'results');
  mkdirSync(resultsDir, { recursive: true });
  const jsonFile = path.join(resultsDir, `failover-${date}${values.quick ? '-quick' : ''}.json`);
  const summary = Object.fromEntries(kinds.map((k) => [k, summarize(results[k])]));
  writeFileSync(jsonFile, `${JSON.stringify({ command, started: started.toISOString(), machine, trialsPerTarget: trials, summary, watchCost: watch, trials: results }, null, 2)}\n`);
  report({ command, started, machine, trialsPerTarget: trials, trials: results, watchCost: watch, jsonFile, writeReadmeToo: !values.quick });
}

/** Prints the table and the verdict; with writeReadmeToo, rewrites the README section as well. */
function report({ command, started, machine, trialsPerTarget, trials: results, watchCost: watch, jsonFile, writeReadmeToo }) {
  const summary = Object.fromEntries(Object.keys(results).map((k) => [k, summarize(results[k])]));
  const table = renderTable(summary);
  const verdict = verdictFor(summary.pgwarden);
  const watchTable = renderWatchCost(watch);
  console.log(`\n${table}\n\n${verdict}\n\n${watchTable}`);
  console.log(`load average before ${machine.loadBefore.join(' ')}, after ${machine.loadAfter.join(' ')}`);
  console.log(`raw results: ${path.relative(process.cwd(), jsonFile)}`);
  if (writeReadmeToo) {
    writeReadme({ command, started, machine, table, verdict, watchTable, jsonFile, trials: trialsPerTarget, results });
    console.log('bench/README.md: "## Failover" updated');
  }
}

/** One kill-and-promote on a fresh cluster behind a fresh proxy process. Never throws: a failure is a result. */
async function trial(kind) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgwarden-bench-failover-'));
  tempDirs.add(dir);
  let cluster;
  let target;
  let loop;
  let killAt;
  try {
    // The harness logs this line right before process.kill(pid, 'SIGKILL'): the moment of the crash.
    cluster = await PgCluster.create({ replicas: 1, settings: CLUSTER_SETTINGS, log: (line) => /SIGKILL postmaster/.test(line) && (killAt ??= Date.now()) });
    const [primary, replica] = cluster.nodes;
    await cluster.query(primary, CREATE_TABLE);
    await cluster.waitForReplication();

    target = await (kind === 'pgwarden' ? startPgwarden : startHaproxy)(cluster, dir);
    await target.ready();
    loop = new WriteLoop({ port: target.port, target: kind });
    loop.start();
    await waitUntil(`a write through ${kind} to ${primary.name}`, () => loop.firstSuccess(0, primary.port) !== undefined, 15_000);
    await sleep(BASELINE_MS);

    await cluster.kill9(primary);
    const killedAt = Date.now();
    await cluster.promote(replica);
    const promotedAt = Date.now();
    await waitUntil(`a write through ${kind} to the promoted ${replica.name}`, () => loop.firstSuccess(killAt, replica.port) !== undefined, RECOVERY_TIMEOUT_MS);
    await sleep(AFTER_FIRST_WRITE_MS);
    await loop.stop();
    const promotion = promotionTimes(path.join(cluster.baseDir, `${replica.name}.log`));

    const first = loop.firstSuccess(killAt, replica.port);
    const firstAfterKill = (times) => times?.find((at) => at >= killAt);
    const downAt = firstAfterKill(target.downs);
    const primaryAt = firstAfterKill(target.primaryChanges);
    const afterKill = loop.attempts.filter((a) => a.end >= killAt);
    const failed = afterKill.filter((a) => !a.ok);
    return {
      detectionMs: downAt === undefined ? undefined : downAt - killAt,
      firstWriteMs: first.end - killAt,
      failedAttempts: failed.filter((a) => a.end <= first.end).length,
      failedAfterFirstWrite: failed.filter((a) => a.end > first.end).length,
      killReturnedMs: killedAt - killAt,
      promotedMs: promotedAt - killAt,
      firstWriteAfterPromoteMs: first.end - promotedAt,
      ...(promotion.requestedAt !== undefined && { promoteRequestMs: promotion.requestedAt - killAt }),
      ...(promotion.doneAt !== undefined && { promotionDoneMs: promotion.doneAt - killAt, proxyShareMs: first.end - promotion.doneAt }),
      // pgwarden only: promotion done → its `primary.changed` log line (the rest of the share is the write's new connection).
      ...(promotion.doneAt !== undefined && primaryAt !== undefined && { promotionSeenMs: primaryAt - promotion.doneAt }),
      ...(primaryAt !== undefined && { newPrimarySeenMs: primaryAt - killAt }),
      attempts: loop.attempts.length,
      errors: countBy(failed.map((a) => a.error)),
      events: target.events.map((e) => ({ ...e, at: e.at - killAt })),
      loadAverage1m: Number(os.loadavg()[0].toFixed(2)),
    };
  } catch (err) {
    const errors = loop ? countBy(loop.attempts.filter((a) => !a.ok && killAt !== undefined && a.end >= killAt).map((a) => a.error)) : {};
    const events = target ? target.events.map((e) => ({ ...e, at: killAt === undefined ? e.at : e.at - killAt })) : [];
    return { error: err.message, errors, events, output: target?.tail() };
  } finally {
    await loop?.stop();
    await target?.stop();
    await cluster?.destroy();
    rmSync(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
  }
}

// ---- numbers ---------------------------------------------------------------------------------

function summarize(rows) {
  const ok = rows.filter((r) => !r.error);
  const stat = (key) => stats(ok.map((r) => r[key]));
  return {
    trials: rows.length,
    failedTrials: rows.length - ok.length,
    detectionMs: stat('detectionMs'),
    firstWriteMs: stat('firstWriteMs'),
    failedAttempts: stat('failedAttempts'),
    promotedMs: stat('promotedMs'),
    firstWriteAfterPromoteMs: stat('firstWriteAfterPromoteMs'),
    promoteRequestMs: stat('promoteRequestMs'),
    promotionDoneMs: stat('promotionDoneMs'),
    proxyShareMs: stat('proxyShareMs'),
    promotionSeenMs: stat('promotionSeenMs'),
  };
}

/** The three targets of issue 18, each MET or NOT MET with its number. */
function verdictFor(pg) {
  if (pg === undefined) return 'pgwarden not measured (--targets)';
  if (pg.firstWriteMs.median === undefined) return 'pgwarden targets: not measured (no successful trial)';
  const line = (what, value, limit) => `${what} ≤ ${limit} ms: ${value === undefined ? 'not measured' : `${value <= limit ? 'MET' : 'NOT MET'} (${value} ms)`}`;
  return [
    'pgwarden targets:',
    `- ${line('proxy share (promotion done → first write), median', pg.proxyShareMs.median, TARGET_SHARE_MS)}`,
    `- ${line('kill → first write, median', pg.firstWriteMs.median, TARGET_FIRST_WRITE_MS)}`,
    `- ${line('kill → first write, max', pg.firstWriteMs.max, TARGET_FIRST_WRITE_MAX_MS)}`,
  ].join('\n');
}

function renderWatchCost(watch) {
  if (watch === undefined) return 'Cost of the failover watch: not measured (--no-watch-cost, or pgwarden not a target).';
  if (watch.error) return `Cost of the failover watch: the measurement failed: ${watch.error}`;
  const row = (name, w) => `| ${name} | ${w.checksPerSecond} | ${w.pollsPerSecond} | ${w.cpuPercent} % |`;
  return [
    `Cost of the failover watch (pgwarden defaults, one primary and one replica, ${watch.healthy.seconds} s windows, admin API on to read /metrics):`,
    '',
    '| pgwarden | checks/s (all backends) | role polls/s | pgwarden CPU (% of one core) |',
    '| --- | --: | --: | --: |',
    row('healthy primary (no gap)', watch.healthy),
    row('gap: primary stopped, nothing promoted', watch.gap),
  ].join('\n');
}

function renderTable(summary) {
  const head = ['target', 'trials', 'detection ms median / p90', 'promotion done ms median (request)', 'proxy share ms median / p90 / max (promotion seen: median)', 'kill→first write ms median / p90 / max', 'failed attempts median / p90'];
  const rows = Object.entries(summary).map(([name, s]) => [
    name,
    s.failedTrials ? `${s.trials - s.failedTrials} (+${s.failedTrials} failed)` : String(s.trials),
    `${fmt(s.detectionMs.median)} / ${fmt(s.detectionMs.p90)}`,
    `${fmt(s.promotionDoneMs.median)} (${fmt(s.promoteRequestMs.median)})`,
    `${fmt(s.proxyShareMs.median)} / ${fmt(s.proxyShareMs.p90)} / ${fmt(s.proxyShareMs.max)}${s.promotionSeenMs.median === undefined ? '' : ` (${s.promotionSeenMs.median})`}`,
    `${fmt(s.firstWriteMs.median)} / ${fmt(s.firstWriteMs.p90)} / ${fmt(s.firstWriteMs.max)}`,
    `${fmt(s.failedAttempts.median)} / ${fmt(s.failedAttempts.p90)}`,
  ]);
  const line = (cells) => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map((h) => '-'.repeat(Math.min(h.length, 3)))), ...rows.map(line)].join('\n');
}

// ---- where and how it ran --------------------------------------------------------------------

function writeReadme({ command, started, machine, table, verdict, watchTable, jsonFile, trials, results }) {
  const busy = Number(machine.loadBefore[0]) > 1 || Number(machine.loadAfter[0]) > 1;
  const sorted = (key) =>
    Object.entries(results)
      .map(([name, rows]) => `${name} ${rows.filter((r) => !r.error && typeof r[key] === 'number').map((r) => r[key]).sort((a, b) => a - b).join(', ')}`)
      .join('; ');
  const file = path.join(__dirname, 'README.md');
  const section = `## Failover

\`bench/failover.js\`: ${trials} trials per target, interleaved (pgwarden, HAProxy, pgwarden, …). Each
trial: a fresh primary + replica (\`PgCluster.create({ replicas: 1 })\`, log lines stamped with
the epoch in ms), the proxy as its own process, a write (\`INSERT … RETURNING
inet_server_port()\`) on a new connection every 20 ms by one client, one attempt at a time
(connect and query timeouts 1 s), \`kill -9\` of the primary and right after it an external
\`pg_ctl promote -w\` of the replica.

- **detection**: kill → the proxy marks the primary down (pgwarden's \`backend.down\` log line;
  HAProxy's "Server pg_rw/pg1 is DOWN" log line).
- **promotion done**: kill → the promoted server logged "database system is ready to accept
  connections" after its "received promote request" (in brackets: kill → that request). This
  is the orchestrator's share: no proxy can route writes there earlier.
- **proxy share**: promotion done → the first write committed on the promoted server through
  the proxy (a write needs a new connection: a fork and authentication on the new primary);
  in brackets, for pgwarden, promotion done → its \`primary.changed\` log line.
- **kill→first write**: kill → that first write; the whole outage as the application sees it.
- **failed attempts**: writes that failed between the kill and that first write.

pgwarden runs with its default health and failover settings (check every 1 s, 250 ms while a
server goes down, fall 2, follow mode, role polls every 50 ms during the gap:
\`failover.watch_interval\`) except \`health.user: postgres\`. HAProxy: \`mode tcp\`,
\`option pgsql-check user postgres\`, \`server pg1 … check inter 1s fall 3 rise 2\`, \`server pg2 …
check inter 1s fall 3 rise 2 backup\`, \`default-server on-marked-down shutdown-sessions\`,
\`retries 3\`, \`timeout connect 1s\`, \`timeout check 1s\` (see \`bench/lib/failover-targets.js\`).

\`--quick\` runs 2 trials per target as a smoke test and leaves this section alone; \`--report
<raw json>\` rewrites this section from saved trials; \`--no-watch-cost\` skips the cost windows.

Reading it: with pgwarden in follow mode, the kill breaks its kept check connection to the
primary, the next check fails, and from that failed check on (the primary failing, then down)
every healthy replica's role is polled on its kept check connection every 50 ms (an empty
query; PostgreSQL 14+ reports \`in_hot_standby = off\` before its ReadyForQuery once the
promotion is done). The first poll after the promotion runs a full check, the replica becomes
the primary on that check (the old one, failing on an older timeline, is fenced), and the
queued write goes to it. So the proxy share is about half a poll interval, a check round trip
and a new server connection, and pgwarden's detection (the old primary marked down after
\`fall\` failed checks) can come after its first write. In the cost table, checks/s in the gap
include the checks every \`fast_interval\` of every backend while there is no primary
(control/primary-loss.ts, 4/s per backend, as before the watch); a healthy replica gets one
role poll a \`watch_interval\` after the previous one answered, except when such a check runs
instead. HAProxy sends sessions to the backup only once pg1 is DOWN (three
failed checks 1 s apart), and a write started in the meantime waits out HAProxy's connect
retries to pg1 until the client's 1 s timeout, so its failed attempts are about the outage in
seconds.

Run ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC:

    ${command}

Machine: ${machine.nproc} CPUs (${machine.cpu}), ${machine.memoryGiB} GiB, Linux ${machine.kernel}, Node ${machine.node},
${machine.postgres}, ${machine.haproxy === 'not installed' ? 'HAProxy not installed (skipped)' : machine.haproxy}.
Load average (1/5/15 min) before ${machine.loadBefore.join(' ')}, after ${machine.loadAfter.join(' ')}${busy ? '\n(a busy machine: other test suites were running on it, which slows promotion and checks)' : ''}.

${table}

Medians of an even number of trials are the mean of the two middle values; p90 is the nearest
rank. Every kill→first write, sorted (ms): ${sorted('firstWriteMs')}. Every proxy share,
sorted (ms): ${sorted('proxyShareMs')}.

${verdict}

${watchTable}

Raw trials: \`bench/results/${path.basename(jsonFile)}\`.
`;
  replaceReadmeSection(file, '## Failover', section);
}

main().catch((e) => {
  console.error(e.stack ?? e.message);
  process.exitCode = 1;
});
