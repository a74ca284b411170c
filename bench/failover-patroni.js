#!/usr/bin/env node
// bench/failover-patroni: how long writes stop behind Patroni, through pgwarden (follow mode, its
// defaults) and through HAProxy configured the way Patroni's documentation shows (an HTTP check
// of GET /primary on each node's REST API every 3 s, fall 3, rise 2). One real Patroni 3 cluster
// (three nodes on one etcd member, synchronous_mode, primary_start_timeout 0: src/harness/
// patroni.ts) for the whole run; both proxies run all along, and each fault is measured through
// one of them, interleaved round by round (pgwarden first in odd rounds, HAProxy in even ones).
// The faults, each on whichever node leads at the time:
//   kill        kill -9 of the leader's postmaster; Patroni fails over to the synchronous standby
//   switchover  `patronictl switchover --leader <leader> --force` (no drain in pgwarden: the
//               plain command an operator runs)
// Through the proxy, a writer opens a new connection for every write (one attempt at a time,
// every ~20 ms, 1 s connect and query timeouts: bench/lib/failover-writer.js), and besides it a
// client arrives every 200 ms and writes once, willing to wait 15 s for its connection. Measured:
//   fault            kill: the SIGKILL; switchover: the old leader's "received fast shutdown
//                    request" (its own log; from then on it takes no new session)
//   promotion done   fault → the new leader logged that it is ready (its own log): Patroni's share
//   new leader seen  fault → the proxy routes to the new leader (pgwarden: `primary.changed`;
//                    HAProxy: "Server pg_rw/<node> is UP")
//   proxy share      promotion done → the first write committed on the new leader through the proxy
//   first write      fault → that first write
//   failed attempts  the writer's attempts that failed between the fault and that first write
//   arrivals         clients that arrived between the fault and that first write: served / failed
//
//   npm run build && node bench/failover-patroni.js [--rounds 3] [--quick] [--faults kill,switchover] [--targets pgwarden,haproxy]
//   node bench/failover-patroni.js --quick [--results-dir DIR]   (the smoke test's run)
//   node bench/failover-patroni.js --report bench/results/failover-patroni-<date>.json
//
// --quick runs one round of a kill through pgwarden only, as a smoke test (raw JSON with a -quick
// suffix; bench/README.md left alone); with --faults/--targets it runs those instead. A full run
// writes "## Failover behind Patroni" into bench/README.md and the raw results into
// bench/results/failover-patroni-<date>.json.
'use strict';
const { execFile } = require('node:child_process');
const { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');
const { findPatroni } = require('../dist/harness/binaries');
const { PatroniCluster } = require('../dist/harness/patroni');
const { killAllSync, sleep, waitUntil } = require('./lib/failover-procs');
const { haproxyVersion, startPgwarden } = require('./lib/failover-targets');
const { Arrivals, CREATE_TABLE, WriteLoop } = require('./lib/failover-writer');
const { logTime, promotionSince, startHaproxyPatroni, usePreciseLogPrefix } = require('./lib/failover-patroni');
const { countBy, fmt, machineInfo, replaceReadmeSection, stats } = require('./lib/failover-report');

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    quick: { type: 'boolean', default: false },
    faults: { type: 'string' },
    targets: { type: 'string' },
    report: { type: 'string' },
    'results-dir': { type: 'string' },
  },
});
const rounds = values.quick ? 1 : Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1) {
  console.error('--rounds takes a positive whole number');
  process.exit(2);
}
const FAULTS = ['kill', 'switchover'];
const TARGETS = ['pgwarden', 'haproxy'];
const pick = (given, all, quickDefault) => (given ?? (values.quick ? quickDefault : all.join(','))).split(',').filter((x) => all.includes(x));
const faults = pick(values.faults, FAULTS, 'kill');
const kinds = pick(values.targets, TARGETS, 'pgwarden');

const HEADING = '## Failover behind Patroni';
const BASELINE_MS = 500; // writes succeed this long before the fault
const AFTER_FIRST_WRITE_MS = 1000; // keep writing after recovery to catch late failures
const RECOVERY_TIMEOUT_MS = 60_000; // HAProxy's checks alone take up to ~15 s here
const HEALTHY_TIMEOUT_MS = 180_000; // the old leader back as a replica (pg_rewind) on a busy machine

const tempDirs = new Set();
process.on('exit', () => {
  killAllSync();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});
// Signals become a normal exit, so that every 'exit' handler (ours, the Patroni and etcd
// harness's) stops servers and removes files.
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(signal === 'SIGINT' ? 130 : 143));

async function main() {
  if (values.report !== undefined) {
    const saved = JSON.parse(readFileSync(values.report, 'utf8'));
    report({ ...saved, started: new Date(saved.started), jsonFile: path.resolve(values.report), writeReadmeToo: true });
    return;
  }
  try {
    findPatroni();
  } catch (err) {
    console.log(`skipped: ${err.message}`);
    return;
  }
  const haproxy = haproxyVersion();
  if (haproxy === undefined && kinds.includes('haproxy')) {
    console.log('haproxy not installed: measured through pgwarden only');
    kinds.splice(kinds.indexOf('haproxy'), 1);
  }
  const patroniVersion = (await execText(findPatroni().patroni, ['--version'])) ?? 'unknown';
  const machine = machineInfo({ patroni: patroniVersion, haproxy: haproxy ?? 'not installed' });
  const command = `npm run build && node bench/failover-patroni.js${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}`;
  const started = new Date();
  console.log(`${rounds} round(s) of ${faults.join(', ')} through ${kinds.join(', ')}; ${machine.nproc} CPUs, load average ${machine.loadBefore.join(' ')}`);

  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgwarden-bench-patroni-'));
  tempDirs.add(dir);
  const results = [];
  let cluster;
  const targets = {};
  try {
    cluster = await PatroniCluster.create({ synchronousMode: true });
    const leader = await cluster.waitHealthy();
    await usePreciseLogPrefix(cluster);
    await cluster.query(leader, CREATE_TABLE);
    console.log(`Patroni cluster up in ${((Date.now() - started) / 1000).toFixed(1)} s, ${leader.name} leads`);
    if (kinds.includes('pgwarden')) targets.pgwarden = await startPgwarden(cluster, dir);
    if (kinds.includes('haproxy')) targets.haproxy = await startHaproxyPatroni(cluster, dir);
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 === 1 ? kinds : [...kinds].reverse();
      for (const fault of faults) {
        for (const kind of order) {
          const r = await measure(cluster, targets[kind], fault);
          results.push({ round, fault, target: kind, ...r });
          const label = `round ${round}/${rounds} ${fault.padEnd(10)} ${kind.padEnd(8)}`;
          if (r.error) console.log(`${label} FAILED: ${r.error}\n  events: ${JSON.stringify(r.events)}\n  errors: ${JSON.stringify(r.errors)}\n${r.output ?? ''}`);
          else {
            console.log(
              `${label} ${r.from}→${r.to}: promotion done ${fmt(r.promotionDoneMs)} ms, new leader seen ${fmt(r.newLeaderSeenMs)} ms, first write ${r.firstWriteMs} ms, ` +
                `failed attempts ${r.failedAttempts}, arrivals served ${r.arrivalsServed} / failed ${r.arrivalsFailed}`,
            );
          }
        }
      }
    }
  } finally {
    await Promise.all(Object.values(targets).map((t) => t.stop()));
    await cluster?.destroy().catch((e) => console.error(`Patroni cluster: ${e.message}`));
    rmSync(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
  }
  machine.loadAfter = os.loadavg().map((l) => l.toFixed(2));

  const date = started.toISOString().slice(0, 10);
  const resultsDir = values['results-dir'] ?? path.join(__dirname, 'results');
  mkdirSync(resultsDir, { recursive: true });
  const jsonFile = path.join(resultsDir, `failover-patroni-${date}${values.quick ? '-quick' : ''}.json`);
  writeFileSync(jsonFile, `${JSON.stringify({ command, started: started.toISOString(), machine, rounds, faults, targets: kinds, summary: summarize(results), results }, null, 2)}\n`);
  report({ command, started, machine, rounds, results, jsonFile, writeReadmeToo: !values.quick });
  if (results.some((r) => r.error)) process.exitCode = 1;
}

/**
 * One fault through one proxy, on whichever node leads now. Waits until the cluster is healthy
 * again first (the previous fault's old leader back as a replica). Never throws: a failure is a result.
 */
async function measure(cluster, target, fault) {
  let loop;
  let arrivals;
  let t0;
  try {
    const leader = await cluster.waitHealthy(HEALTHY_TIMEOUT_MS);
    if (target.name === 'haproxy') await target.ready(leader, 60_000);
    else await target.ready();
    loop = new WriteLoop({ port: target.port, target: target.name });
    loop.start();
    await waitUntil(`a write through ${target.name} to the leader ${leader.name}`, () => loop.firstSuccess(Date.now() - 1000, leader.port) !== undefined, 60_000);
    await sleep(BASELINE_MS);
    arrivals = new Arrivals({ port: target.port, target: target.name });
    arrivals.start();
    await sleep(BASELINE_MS);

    let newLeader;
    let invokedAt;
    if (fault === 'kill') {
      t0 = await cluster.kill9Postmaster(leader);
      newLeader = await cluster.waitForNewLeader(leader, RECOVERY_TIMEOUT_MS);
    } else {
      invokedAt = Date.now();
      newLeader = (await cluster.switchover()).to;
      t0 = logTime(leader.logFile, /received fast shutdown request/, invokedAt - 1000) ?? invokedAt;
    }
    await waitUntil(`a write through ${target.name} to the new leader ${newLeader.name}`, () => loop.firstSuccess(t0, newLeader.port) !== undefined, RECOVERY_TIMEOUT_MS);
    await sleep(AFTER_FIRST_WRITE_MS);
    await Promise.all([loop.stop(), arrivals.stop()]);

    const first = loop.firstSuccess(t0, newLeader.port);
    const promotion = promotionSince(newLeader.logFile, invokedAt ?? t0);
    const afterFault = loop.attempts.filter((a) => a.end >= t0);
    const failed = afterFault.filter((a) => !a.ok);
    const inGap = arrivals.arrivals.filter((a) => a.start >= t0 && a.start <= first.end);
    const seen = target.events.find((e) => e.at >= t0 && e.backend === newLeader.name && (e.event === 'primary.changed' || e.event === 'up'))?.at;
    const down = target.events.find((e) => e.at >= t0 && e.backend === leader.name && (e.event === 'backend.down' || e.event === 'down'))?.at;
    const since = (at) => (at === undefined ? undefined : at - t0);
    return {
      from: leader.name,
      to: newLeader.name,
      ...(invokedAt !== undefined && { switchoverInvokedMs: invokedAt - t0 }),
      promoteRequestMs: since(promotion.requestedAt),
      promotionDoneMs: since(promotion.doneAt),
      oldLeaderDownMs: since(down),
      newLeaderSeenMs: since(seen),
      ...(promotion.doneAt !== undefined && { proxyShareMs: first.end - promotion.doneAt }),
      firstWriteMs: first.end - t0,
      // connected → COMMIT returned: with synchronous_mode the new leader's first commits wait for a synchronous standby.
      firstCommitMs: first.end - first.connected,
      failedAttempts: failed.filter((a) => a.end <= first.end).length,
      failedAfterFirstWrite: failed.filter((a) => a.end > first.end).length,
      attempts: loop.attempts.length,
      errors: countBy(failed.map((a) => a.error)),
      arrivalsInGap: inGap.length,
      arrivalsServed: inGap.filter((a) => a.ok).length,
      arrivalsFailed: inGap.filter((a) => !a.ok).length,
      longestServedArrivalMs: Math.max(0, ...inGap.filter((a) => a.ok).map((a) => a.end - a.start)),
      arrivalErrors: countBy(inGap.filter((a) => !a.ok).map((a) => a.error)),
      arrivalsFailedAfterGap: arrivals.arrivals.filter((a) => a.start > first.end && !a.ok).length,
      events: target.events.filter((e) => e.at >= t0 - 1000).map((e) => ({ ...e, at: e.at - t0 })),
      loadAverage1m: Number(os.loadavg()[0].toFixed(2)),
    };
  } catch (err) {
    await Promise.all([loop?.stop(), arrivals?.stop()]);
    const failed = loop && t0 !== undefined ? loop.attempts.filter((a) => !a.ok && a.end >= t0) : [];
    return {
      error: err.message,
      errors: countBy(failed.map((a) => a.error)),
      events: target.events.filter((e) => t0 === undefined || e.at >= t0 - 1000).map((e) => ({ ...e, at: t0 === undefined ? e.at : e.at - t0 })),
      output: `${target.tail()}\n${cluster.logTails(20)}`,
    };
  }
}

/** The program's output, or undefined when it fails. */
function execText(file, args) {
  return new Promise((resolve) => execFile(file, args, (err, stdout) => resolve(err ? undefined : stdout.trim())));
}

// ---- numbers ---------------------------------------------------------------------------------

function summarize(results) {
  const rows = [];
  for (const fault of FAULTS) {
    for (const target of TARGETS) {
      const all = results.filter((r) => r.fault === fault && r.target === target);
      if (all.length === 0) continue;
      const ok = all.filter((r) => !r.error);
      const stat = (key) => stats(ok.map((r) => r[key]));
      const sum = (key) => ok.reduce((n, r) => n + r[key], 0);
      rows.push({
        fault,
        target,
        trials: all.length,
        failedTrials: all.length - ok.length,
        promotionDoneMs: stat('promotionDoneMs'),
        firstCommitMs: stat('firstCommitMs'),
        newLeaderSeenMs: stat('newLeaderSeenMs'),
        proxyShareMs: stat('proxyShareMs'),
        firstWriteMs: stat('firstWriteMs'),
        failedAttempts: stat('failedAttempts'),
        arrivalsInGap: sum('arrivalsInGap'),
        arrivalsServed: sum('arrivalsServed'),
        arrivalsFailed: sum('arrivalsFailed'),
        longestServedArrivalMs: stat('longestServedArrivalMs'),
      });
    }
  }
  return rows;
}

const line = (cells) => `| ${cells.join(' | ')} |`;
const mm = (s) => `${fmt(s.median)} / ${fmt(s.max)}`;

function renderTable(summary) {
  const head = ['fault', 'proxy', 'trials', 'promotion done', 'new leader seen by the proxy', 'proxy share', 'first write: connected→committed', 'fault→first write', 'failed attempts', 'arrivals in the gap: served / failed (all trials)'];
  return [
    'ms, median / max (failed attempts: median / max per trial):',
    '',
    line(head),
    line(['---', '---', ...head.slice(2).map(() => '--:')]),
    ...summary.map((s) =>
      line([
        s.fault,
        s.target,
        s.failedTrials ? `${s.trials - s.failedTrials} (+${s.failedTrials} failed)` : String(s.trials),
        mm(s.promotionDoneMs),
        mm(s.newLeaderSeenMs),
        mm(s.proxyShareMs),
        mm(s.firstCommitMs),
        mm(s.firstWriteMs),
        mm(s.failedAttempts),
        `${s.arrivalsServed} / ${s.arrivalsFailed}`,
      ]),
    ),
  ].join('\n');
}

/** Prints the table; with writeReadmeToo, rewrites the README section as well. */
function report({ command, started, machine, results, jsonFile, writeReadmeToo }) {
  const table = renderTable(summarize(results));
  console.log(`\n${table}`);
  console.log(`load average before ${machine.loadBefore.join(' ')}, after ${machine.loadAfter.join(' ')}`);
  console.log(`raw results: ${path.relative(process.cwd(), jsonFile)}`);
  if (writeReadmeToo) {
    writeReadme({ command, started, machine, table, jsonFile, results });
    console.log(`bench/README.md: "${HEADING}" updated`);
  }
}

// ---- the README section ----------------------------------------------------------------------

function writeReadme({ command, started, machine, table, jsonFile, results }) {
  const busy = Number(machine.loadBefore[0]) > 1 || Number(machine.loadAfter[0]) > 1;
  const ok = results.filter((r) => !r.error);
  const each = (key) =>
    FAULTS.flatMap((f) => TARGETS.map((t) => [f, t, ok.filter((r) => r.fault === f && r.target === t).map((r) => r[key])]))
      .filter(([, , xs]) => xs.length > 0)
      .map(([f, t, xs]) => `${f} ${t} ${xs.join(', ')}`)
      .join('; ');
  const failed = results.filter((r) => r.error).map((r) => `- round ${r.round}, ${r.fault} through ${r.target}: ${r.error.split('\n')[0]}`);
  const section = `${HEADING}

\`bench/failover-patroni.js\`: one real Patroni cluster for the whole run (\`PatroniCluster\`,
src/harness/patroni.ts: Patroni 3 on three nodes, one etcd member, \`synchronous_mode\`,
\`ttl: 10\`, \`loop_wait: 1\`, \`primary_start_timeout: 0\`; \`log_line_prefix\` set to the epoch in
ms through \`patronictl edit-config\`), pgwarden and HAProxy both in front of it all along, each
its own process. Each round runs every fault through each proxy in turn (pgwarden first in odd
rounds, HAProxy first in even ones), each on whichever node leads at that moment, after the
cluster is healthy again (the old leader back as a replica):

- **kill**: \`kill -9\` of the leader's postmaster; Patroni fails over to the synchronous standby.
- **switchover**: a plain \`patronictl switchover --leader <leader> --force\` (Patroni picks the
  synchronous standby); no drain in pgwarden first (see README "Behind Patroni" for the drain).

Through the proxy under test, one writer opens a new connection for every write (\`INSERT …
RETURNING inet_server_port()\`, one attempt at a time, every 20 ms, connect and query timeouts
1 s, as in "Failover"), and besides it a new client arrives every 200 ms, whatever happened to
the others, and writes once, willing to wait 15 s for its connection.

- **fault**: kill: the SIGKILL; switchover: the old leader's "received fast shutdown request"
  (its own log; from then on it takes no new session and ends the open ones).
- **promotion done**: the fault → the new leader logged "database system is ready to accept
  connections" after its "received promote request": Patroni's share, no proxy can route writes
  there earlier.
- **new leader seen by the proxy**: the fault → pgwarden's \`primary.changed\` log line /
  HAProxy's "Server pg_rw/<node> is UP" log line.
- **proxy share**: promotion done → the first write committed on the new leader through the proxy.
- **fault→first write**: the fault → that first write; the outage as the writer sees it.
- **failed attempts**: the writer's attempts that failed between the fault and that first write.
- **arrivals in the gap**: clients that arrived between the fault and the first write through
  that proxy, summed over the trials: served (their write committed) / failed.

pgwarden runs with its defaults (follow mode, check every 1 s, 250 ms while a server goes down,
fall 2, role polls every 50 ms while there is no primary, \`queue_timeout: 30s\`) except
\`health.user: postgres\`, every node's PostgreSQL port a backend (\`bench/lib/failover-targets.js\`).
HAProxy as Patroni's haproxy.cfg has it (\`bench/lib/failover-patroni.js\`): \`mode tcp\`,
\`retries 2\`, \`timeout connect 4s\`, \`timeout check 5s\`, \`option httpchk OPTIONS /primary\`,
\`http-check expect status 200\`, \`default-server inter 3s fall 3 rise 2 on-marked-down
shutdown-sessions\`, one \`server\` per node with \`check port <REST port>\`.

\`--quick\` runs one kill through pgwarden as a smoke test and leaves this section alone;
\`--report <raw json>\` rewrites this section from saved results.

Run ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC:

    ${command}

Machine: ${machine.nproc} CPUs (${machine.cpu}), ${machine.memoryGiB} GiB, Linux ${machine.kernel}, Node ${machine.node},
${machine.postgres}, ${machine.patroni}, ${machine.haproxy === 'not installed' ? 'HAProxy not installed (skipped)' : machine.haproxy}.
Load average (1/5/15 min) before ${machine.loadBefore.join(' ')}, after ${machine.loadAfter.join(' ')}${busy ? '\n(a busy machine: other work was running on it, which slows Patroni, promotion and checks)' : ''}.

${table}

Medians of an even number of trials are the mean of the two middle values. Every fault→first
write (ms, in the order measured): ${each('firstWriteMs')}.
Every failed attempts count: ${each('failedAttempts')}.
${failed.length ? `\nFailed trials:\n\n${failed.join('\n')}\n` : ''}
Reading it. Patroni's share (promotion done) is about the same whichever proxy is in front: after a
\`kill -9\` Patroni on the dead leader's node sees its postmaster gone on its next loop (1 s), with
\`primary_start_timeout: 0\` gives up the leader key, and the synchronous standby takes it and
promotes; after a switchover the promotion follows the old leader's shutdown checkpoint.
pgwarden in follow mode polls the role of every healthy replica every 50 ms from the first failed
check of the primary on, so it routes to the new leader about when it is promoted (its
\`primary.changed\` can even come before the postmaster's "ready to accept connections" line: a
session sees \`pg_is_in_recovery()\` false once the startup process has ended recovery, a moment
before the postmaster logs it). Clients that connect in the gap wait in its queue
(\`queue_timeout\`, 30 s) and are served then. In a switchover, a client that reaches the old
leader between the start of its fast shutdown and pgwarden's next failed check gets 57P03 "the
database system is shutting down" (one arrival in most trials); the drain of README "Behind
Patroni" avoids that. The writer's failed attempts through pgwarden are the write in flight at
the fault, 57P03 refusals from the stopping leader (switchover), and its own 1 s connect timeout
while it waits in the queue. pgwarden's share (promotion done → first write) is longer here than
in "Failover", and longer after a kill than after a switchover; the commit is not the cause (the
connected→committed column). The likely cause is the queue itself: every client queued in the gap
(13–15 arrivals after a kill, 7–8 after a switchover, one every 200 ms) is sent to the new leader
at the same moment, each a new server process to fork and authenticate on 2 busy cores, and the
writer's session waits its turn among them. In one kill measured by hand on the same cluster
setup with the writer alone (no arrivals, pgwarden's debug log of each session's phases), the
queued write connected 50 ms after \`primary.changed\` and the share was 23 ms.

HAProxy as Patroni's documentation configures it checks \`/primary\` every 3 s and marks a server
UP after 2 passing checks and DOWN after 3 failing ones: the new leader takes sessions 3–6 s
after its promotion, and the old leader stays UP for up to 9 s after the fault. Patroni brings
it back as a replica within seconds (right after its shutdown in a switchover; after a kill it
restarts it, with \`pg_rewind\` when needed), so while HAProxy still counts it UP, sessions balanced to it connect to a
replica and their writes fail with 25006 "cannot execute INSERT in a read-only transaction":
most of HAProxy's failed attempts and failed arrivals are those; the rest are 57P03 from the
stopping or starting server and connections HAProxy closes while no server is UP. HAProxy has no
queue: a client that arrives in the gap is served only if it lands on the new leader after
HAProxy marked it UP. HAProxy marks the old leader DOWN (3 failed checks 3 s apart) about when
its first write reaches the new leader or later (in most trials after the measured window): until
then it balances sessions round robin between the two servers it counts UP, and the writes that
go to the old leader fail.

Raw results: \`bench/results/${path.basename(jsonFile)}\`.
`;
  replaceReadmeSection(path.join(__dirname, 'README.md'), HEADING, section);
}

main().catch((e) => {
  console.error(e.stack ?? e.message);
  process.exitCode = 1;
});
