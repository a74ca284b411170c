#!/usr/bin/env node
// bench/failover-coordinated: how long writes stop through each of three pgwarden instances
// coordinated through etcd when the primary dies and pgwarden itself promotes (promote mode).
// Each trial builds a fresh primary + 2 replicas and a fresh 3-member etcd, starts instances a, b
// and c as their own processes (pgwarden's default health settings as in bench/failover.js,
// `failover.mode: promote`, `promote_after: 1s`), writes through each instance's rw listener
// with one WriteLoop per instance (a new connection every ~20 ms, one attempt at a time, 1 s
// connect and query timeouts), SIGKILLs the primary — nobody promotes from outside — and measures:
//   quorum           kill → the leader's `failover.quorum` line: each instance's detection and its
//                    promote_after, the votes written to etcd and read by the leader
//   handshake        the leader's /status `coordination.lastHandshakeMs`: epoch "no primary"
//                    published → every live member acknowledged it
//   promote call     kill → the leader's `failover.promote` line (it calls pg_promote() next)
//   promotion done   kill → the promoted server logged that it is ready (its own log, epoch ms)
//   proxy share      promotion done → the first write committed on it through that instance
//   first write      kill → the first write committed on the new primary through that instance
//   failed attempts  writes through that instance that failed between the kill and its first write
//
//   npm run build && node bench/failover-coordinated.js [--trials 10] [--quick]
//   node bench/failover-coordinated.js --report bench/results/failover-coordinated-<date>.json
//
// --quick runs 2 trials as a smoke test (raw JSON with a -quick suffix) and leaves bench/README.md
// alone. A full run writes "## Failover with three instances" into bench/README.md and the raw
// trials into bench/results/failover-coordinated-<date>.json. BENCH_PGWARDEN_LOG_LEVEL=debug gives
// pgwarden's debug lines in a failed trial's output.
'use strict';
const { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');
const { PgCluster } = require('../dist/harness/cluster');
const { EtcdCluster } = require('../dist/harness/etcd');
const { killAllSync, sleep, waitUntil } = require('./lib/failover-procs');
const { CREATE_TABLE, WriteLoop } = require('./lib/failover-writer');
const { CLUSTER_SETTINGS, promotionTimes } = require('./lib/failover-measures');
const { NAMES, coordinationOf, etcdVersion, startTrio, waitAgreed } = require('./lib/failover-trio');
const { countBy, fmt, machineInfo, replaceReadmeSection, stats } = require('./lib/failover-report');

const { values } = parseArgs({
  options: {
    trials: { type: 'string', default: '10' },
    quick: { type: 'boolean', default: false },
    report: { type: 'string' },
  },
});
const trials = values.quick ? 2 : Number(values.trials);
if (!Number.isInteger(trials) || trials < 1) {
  console.error('--trials takes a positive whole number');
  process.exit(2);
}

const PROMOTE_AFTER_MS = 1000;
// Issue "coordination through etcd", point 8: kill → first write ≤ promote_after + 1 s, median, through every instance.
const TARGET_FIRST_WRITE_MS = PROMOTE_AFTER_MS + 1000;
const BASELINE_MS = 500; // writes succeed through every instance this long before the kill
const AFTER_FIRST_WRITE_MS = 1000; // keep writing after recovery to catch late failures
const RECOVERY_TIMEOUT_MS = 30_000;
const HEADING = '## Failover with three instances';

// Temporary directories still to remove, also when the run is interrupted.
const tempDirs = new Set();
process.on('exit', () => {
  killAllSync();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});
// Our own handlers (installed before any cluster) turn a signal into a normal exit, so that every
// 'exit' handler — ours and the harness's, for PostgreSQL and etcd — stops servers and removes files.
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(signal === 'SIGINT' ? 130 : 143));

async function main() {
  if (values.report !== undefined) {
    const saved = JSON.parse(readFileSync(values.report, 'utf8'));
    report({ ...saved, started: new Date(saved.started), jsonFile: path.resolve(values.report), writeReadmeToo: true });
    return;
  }
  const machine = machineInfo({ etcd: etcdVersion() });
  const command = `npm run build && node bench/failover-coordinated.js${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}`;
  const started = new Date();
  console.log(`${trials} trial(s); ${machine.nproc} CPUs, load average ${machine.loadBefore.join(' ')}`);

  const results = [];
  for (let i = 0; i < trials; i++) {
    const r = await trial();
    results.push(r);
    const label = `trial ${String(i + 1).padStart(2)}/${trials}`;
    if (r.error) {
      console.log(`${label} FAILED: ${r.error}`);
      for (const [name, x] of Object.entries(r.instances ?? {})) console.log(`  ${name} events: ${JSON.stringify(x.events)}\n  ${name} errors: ${JSON.stringify(x.errors)}\n  ${name} output:\n${x.output}`);
    } else {
      const each = (key) => NAMES.map((n) => `${n} ${fmt(r.instances[n][key])}`).join(', ');
      console.log(
        `${label} leader ${r.leader}, ${r.promoted} promoted${r.promotions === 1 ? '' : ` (${r.promotions} failover.promoted lines!)`}: quorum ${fmt(r.quorumMs)} ms, handshake ${fmt(r.handshakeMs)} ms, promotion done ${fmt(r.promotionDoneMs)} ms; ` +
          `first write ${each('firstWriteMs')} ms; failed attempts ${each('failedAttempts')}`,
      );
    }
  }
  machine.loadAfter = os.loadavg().map((l) => l.toFixed(2));

  const date = started.toISOString().slice(0, 10);
  const resultsDir = path.join(__dirname, 'results');
  mkdirSync(resultsDir, { recursive: true });
  const jsonFile = path.join(resultsDir, `failover-coordinated-${date}${values.quick ? '-quick' : ''}.json`);
  writeFileSync(jsonFile, `${JSON.stringify({ command, started: started.toISOString(), machine, promoteAfterMs: PROMOTE_AFTER_MS, trialCount: trials, summary: summarize(results), trials: results }, null, 2)}\n`);
  report({ command, started, machine, trials: results, jsonFile, writeReadmeToo: !values.quick });
  if (results.some((r) => r.error)) process.exitCode = 1;
}

/** Prints the tables and the verdict; with writeReadmeToo, rewrites the README section as well. */
function report({ command, started, machine, trials: results, jsonFile, writeReadmeToo }) {
  const summary = summarize(results);
  const phases = renderPhases(summary);
  const table = renderInstances(summary);
  const verdict = verdictFor(summary);
  console.log(`\n${phases}\n\n${table}\n\n${verdict}`);
  console.log(`load average before ${machine.loadBefore.join(' ')}, after ${machine.loadAfter.join(' ')}`);
  console.log(`raw results: ${path.relative(process.cwd(), jsonFile)}`);
  if (writeReadmeToo) {
    writeReadme({ command, started, machine, phases, table, verdict, jsonFile, results });
    console.log(`bench/README.md: "${HEADING}" updated`);
  }
}

/** One kill on a fresh cluster, a fresh etcd and three fresh instances. Never throws: a failure is a result. */
async function trial() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgwarden-bench-coordinated-'));
  tempDirs.add(dir);
  let etcd;
  let cluster;
  const instances = [];
  const loops = [];
  let killAt;
  try {
    etcd = await EtcdCluster.create({ members: 3 });
    // The harness logs this line right before process.kill(pid, 'SIGKILL'): the moment of the crash.
    cluster = await PgCluster.create({ replicas: 2, settings: CLUSTER_SETTINGS, log: (line) => /SIGKILL postmaster/.test(line) && (killAt ??= Date.now()) });
    const [primary] = cluster.nodes;
    await cluster.query(primary, CREATE_TABLE);
    await cluster.waitForReplication();

    await startTrio(cluster, etcd, dir, { promoteAfterMs: PROMOTE_AFTER_MS, started: instances });
    await waitAgreed(instances, primary.name);
    for (const t of instances) loops.push(new WriteLoop({ port: t.port, target: t.name }));
    for (const loop of loops) loop.start();
    await waitUntil(`a write through each of a, b, c to ${primary.name}`, () => loops.every((l) => l.firstSuccess(0, primary.port) !== undefined), 15_000);
    await sleep(BASELINE_MS);

    await cluster.kill9(primary);
    const replicaPorts = new Set(cluster.replicas.map((n) => n.port));
    const firstOnReplica = (loop) => loop.attempts.find((a) => a.ok && a.end >= killAt && replicaPorts.has(a.serverPort));
    await waitUntil('a write through each of a, b, c to a promoted replica', () => loops.every((l) => firstOnReplica(l) !== undefined), RECOVERY_TIMEOUT_MS);
    await sleep(AFTER_FIRST_WRITE_MS);
    await Promise.all(loops.map((l) => l.stop()));
    const views = await coordinationOf(instances);

    const ports = new Set(loops.map((l) => firstOnReplica(l).serverPort));
    if (ports.size !== 1) throw new Error(`the instances' first writes after the kill went to different servers (ports ${[...ports].join(', ')}): more than one primary`);
    const promoted = cluster.nodes.find((n) => ports.has(n.port));
    const promotion = promotionTimes(path.join(cluster.baseDir, `${promoted.name}.log`));
    const leaderName = Object.values(views).find((v) => v?.leader !== undefined)?.leader;
    const leader = instances.find((t) => t.name === leaderName);
    const since = (at) => (at === undefined ? undefined : at - killAt);
    const leaderEvent = (event, match = () => true) => leader?.events.find((e) => e.event === event && e.at >= killAt && match(e))?.at;

    const perInstance = {};
    instances.forEach((t, i) => {
      const loop = loops[i];
      const first = loop.attempts.find((a) => a.ok && a.end >= killAt && a.serverPort === promoted.port);
      const failed = loop.attempts.filter((a) => !a.ok && a.end >= killAt);
      const event = (name, match = () => true) => t.events.find((e) => e.event === name && e.at >= killAt && match(e))?.at;
      perInstance[t.name] = {
        firstWriteMs: first.end - killAt,
        failedAttempts: failed.filter((a) => a.end <= first.end).length,
        failedAfterFirstWrite: failed.filter((a) => a.end > first.end).length,
        ...(promotion.doneAt !== undefined && { proxyShareMs: first.end - promotion.doneAt }),
        downMs: since(event('backend.down', (e) => e.backend === primary.name)),
        voteMs: since(event('coordination.vote')),
        newPrimarySeenMs: since(event('primary.changed', (e) => e.backend === promoted.name)),
        epoch: views[t.name]?.epoch,
        primaryInStatus: views[t.name]?.primary,
        attempts: loop.attempts.length,
        errors: countBy(failed.map((a) => a.error)),
        events: t.events.filter((e) => e.at >= killAt - 1000).map((e) => ({ ...e, at: e.at - killAt })),
      };
    });
    const quorumMs = since(leaderEvent('failover.quorum'));
    const handshakeMs = views[leaderName]?.lastHandshakeMs;
    const promoteCallMs = since(leaderEvent('failover.promote'));
    return {
      leader: leaderName,
      promoted: promoted.name,
      // Expected 1: only the leader promotes, once.
      promotions: instances.reduce((n, t) => n + t.events.filter((e) => e.event === 'failover.promoted' && e.at >= killAt).length, 0),
      quorumMs,
      handshakeMs,
      promoteCallMs,
      promotedLogMs: since(leaderEvent('failover.promoted')),
      publishedMs: since(leaderEvent('coordination.state', (e) => /is the primary of the cluster/.test(e.msg ?? ''))),
      ...(promotion.requestedAt !== undefined && { promoteRequestMs: promotion.requestedAt - killAt }),
      ...(promotion.doneAt !== undefined && { promotionDoneMs: promotion.doneAt - killAt }),
      ...(promotion.doneAt !== undefined && promoteCallMs !== undefined && { promotionMs: promotion.doneAt - killAt - promoteCallMs }),
      slowestFirstWriteMs: Math.max(...Object.values(perInstance).map((x) => x.firstWriteMs)),
      instances: perInstance,
      loadAverage1m: Number(os.loadavg()[0].toFixed(2)),
    };
  } catch (err) {
    const perInstance = {};
    instances.forEach((t, i) => {
      const failed = loops[i]?.attempts.filter((a) => !a.ok && killAt !== undefined && a.end >= killAt) ?? [];
      perInstance[t.name] = { errors: countBy(failed.map((a) => a.error)), events: t.events.map((e) => ({ ...e, at: killAt === undefined ? e.at : e.at - killAt })), output: t.tail() };
    });
    return { error: err.message, instances: perInstance };
  } finally {
    await Promise.all(loops.map((l) => l.stop()));
    await Promise.all(instances.map((t) => t.stop()));
    await cluster?.destroy();
    await etcd?.destroy().catch((e) => console.error(`etcd: ${e.message}`));
    rmSync(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
  }
}

// ---- numbers ---------------------------------------------------------------------------------

function summarize(rows) {
  const ok = rows.filter((r) => !r.error);
  const stat = (key) => stats(ok.map((r) => r[key]));
  const pooled = (key) => stats(ok.flatMap((r) => NAMES.map((n) => r.instances[n][key])));
  return {
    trials: rows.length,
    failedTrials: rows.length - ok.length,
    quorumMs: stat('quorumMs'),
    handshakeMs: stat('handshakeMs'),
    promoteCallMs: stat('promoteCallMs'),
    promoteRequestMs: stat('promoteRequestMs'),
    promotionMs: stat('promotionMs'),
    promotionDoneMs: stat('promotionDoneMs'),
    publishedMs: stat('publishedMs'),
    slowestFirstWriteMs: stat('slowestFirstWriteMs'),
    instances: Object.fromEntries(
      NAMES.map((n) => {
        const each = (key) => stats(ok.map((r) => r.instances[n][key]));
        return [n, { firstWriteMs: each('firstWriteMs'), proxyShareMs: each('proxyShareMs'), failedAttempts: each('failedAttempts'), voteMs: each('voteMs'), downMs: each('downMs'), newPrimarySeenMs: each('newPrimarySeenMs') }];
      }),
    ),
    anyInstance: { firstWriteMs: pooled('firstWriteMs'), proxyShareMs: pooled('proxyShareMs'), failedAttempts: pooled('failedAttempts'), voteMs: pooled('voteMs'), downMs: pooled('downMs'), newPrimarySeenMs: pooled('newPrimarySeenMs') },
  };
}

/** The target of point 8, MET or NOT MET through each instance. */
function verdictFor(summary) {
  const line = (what, value) => `${what}: ${value === undefined ? 'not measured' : `${value <= TARGET_FIRST_WRITE_MS ? 'MET' : 'NOT MET'} (${value} ms)`}`;
  const medians = NAMES.map((n) => summary.instances[n].firstWriteMs.median);
  const all = medians.some((m) => m === undefined) ? 'not measured' : medians.every((m) => m <= TARGET_FIRST_WRITE_MS) ? 'MET' : 'NOT MET';
  return [
    `Target: kill → first write, median ≤ promote_after + 1 s = ${TARGET_FIRST_WRITE_MS} ms through every instance: ${all}`,
    ...NAMES.map((n, i) => `- ${line(`through ${n}`, medians[i])}`),
  ].join('\n');
}

const line = (cells) => `| ${cells.join(' | ')} |`;
const mm = (s) => `${fmt(s.median)} / ${fmt(s.max)}`;

function renderPhases(s) {
  const head = ['trials', 'kill→quorum (detection + promote_after)', 'handshake', 'kill→promote call', 'promote call→promotion done', 'kill→promotion done', 'kill→new primary published'];
  const row = [
    s.failedTrials ? `${s.trials - s.failedTrials} (+${s.failedTrials} failed)` : String(s.trials),
    mm(s.quorumMs),
    mm(s.handshakeMs),
    mm(s.promoteCallMs),
    mm(s.promotionMs),
    mm(s.promotionDoneMs),
    mm(s.publishedMs),
  ];
  return [`Phases, ms median / max (the leader's log and /status, the promoted server's log):`, '', line(head), line(head.map(() => '--:')), line(row)].join('\n');
}

function renderInstances(s) {
  const head = ['instance', 'kill→down', 'kill→vote', 'kill→new primary seen', 'proxy share (promotion done→first write)', 'kill→first write', 'failed attempts'];
  const row = (name, x) => [name, mm(x.downMs), mm(x.voteMs), mm(x.newPrimarySeenMs), mm(x.proxyShareMs), `${fmt(x.firstWriteMs.median)} / ${fmt(x.firstWriteMs.p90)} / ${fmt(x.firstWriteMs.max)}`, mm(x.failedAttempts)];
  return [
    'Through each instance, ms median / max (kill→first write: median / p90 / max):',
    '',
    line(head),
    line(['---', ...head.slice(1).map(() => '--:')]),
    ...NAMES.map((n) => line(row(n, s.instances[n]))),
    line(row('all three (pooled)', s.anyInstance)),
    line(['slowest of the three, per trial', '', '', '', '', `${fmt(s.slowestFirstWriteMs.median)} / ${fmt(s.slowestFirstWriteMs.p90)} / ${fmt(s.slowestFirstWriteMs.max)}`, '']),
  ].join('\n');
}

// ---- the README section ------------------------------------------------------------------------

function writeReadme({ command, started, machine, phases, table, verdict, jsonFile, results }) {
  const busy = Number(machine.loadBefore[0]) > 1 || Number(machine.loadAfter[0]) > 1;
  const ok = results.filter((r) => !r.error);
  const sorted = (xs) => xs.filter((x) => typeof x === 'number').sort((a, b) => a - b).join(', ');
  const failed = results.filter((r) => r.error).map((r) => `- ${r.error}`);
  const section = `${HEADING}

\`bench/failover-coordinated.js\`: ${results.length} trials. Each trial: a fresh primary + 2 replicas
(\`PgCluster.create({ replicas: 2 })\`, log lines stamped with the epoch in ms), a fresh 3-member
etcd (\`EtcdCluster.create({ members: 3 })\`, the harness's fast elections), three pgwarden
instances a, b and c, each its own process, coordinated through that etcd (\`coordination:\` ttl
3s, etcd timeout 500ms), one writer per instance as in "Failover" (\`INSERT … RETURNING
inet_server_port()\` on a new connection every 20 ms through that instance's rw listener, one
attempt at a time, connect and query timeouts 1 s), and \`kill -9\` of the primary. Nobody
promotes from outside: pgwarden does.

pgwarden runs with its default health settings (check every 1 s, 250 ms while a server goes
down, fall 2), \`health.user: postgres\`, \`failover.mode: promote\`, \`promote_after: 1s\`, and its
admin API on (read after each trial for \`/status\`). The chain after the kill: each instance's
checks find the primary down, and after \`promote_after\` more each votes in etcd; the leader (the
holder of the lease-backed \`leader\` key) sees a quorum (2 of 3) and publishes an epoch with no
primary; every live member acknowledges it (stops writes to the old primary); the leader calls
\`pg_promote()\` on the best replica and publishes it as the primary; each instance then routes
writes to it once its own checks see it as primary.

- **kill→quorum**: the kill → the leader's \`failover.quorum\` line: detection, \`promote_after\`,
  and the votes reaching the leader through etcd.
- **handshake**: the leader's \`/status\` \`coordination.lastHandshakeMs\`: the epoch with no
  primary published → every live member acknowledged it.
- **kill→promote call**: the kill → the leader's \`failover.promote\` line, right before it calls
  \`pg_promote()\`; **promote call→promotion done**: from there to the promoted server's "database
  system is ready to accept connections" (its own log); **kill→new primary published**: the
  leader's \`coordination.state\` line naming the new primary.
- **kill→down**: the kill → that instance's \`backend.down\` line for the old primary (\`fall\`
  failed checks). **kill→vote**: the kill → its \`coordination.vote\` line, \`promote_after\`
  later; an instance whose \`promote_after\` had not run out when the other two formed the
  quorum does not vote (no value). **kill→new primary seen**: its \`primary.changed\` line.
- **proxy share**: promotion done → the first write committed on the promoted server through
  that instance (reading the published primary, its own check of the new primary, a new
  server connection).
- **kill→first write**: the kill → that first write; the outage as an application behind that
  instance sees it. **failed attempts**: writes through it that failed in between.

\`--quick\` runs 2 trials as a smoke test and leaves this section alone; \`--report <raw json>\`
rewrites this section from saved trials.

Run ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC:

    ${command}

Machine: ${machine.nproc} CPUs (${machine.cpu}), ${machine.memoryGiB} GiB, Linux ${machine.kernel}, Node ${machine.node},
${machine.postgres}, ${machine.etcd}.
Load average (1/5/15 min) before ${machine.loadBefore.join(' ')}, after ${machine.loadAfter.join(' ')}${busy ? '\n(a busy machine: other work was running on it, which slows promotion and checks)' : ''}.

${phases}

${table}

Medians of an even number of trials are the mean of the two middle values; p90 is the nearest
rank. Every kill→first write, sorted (ms): ${NAMES.map((n) => `${n} ${sorted(ok.map((r) => r.instances[n].firstWriteMs))}`).join('; ')}.
Every handshake, sorted (ms): ${sorted(ok.map((r) => r.handshakeMs))}.
${failed.length ? `\nFailed trials:\n\n${failed.join('\n')}\n` : ''}
${verdict}

Raw trials: \`bench/results/${path.basename(jsonFile)}\`.
`;
  replaceReadmeSection(path.join(__dirname, 'README.md'), HEADING, section);
}

main().catch((e) => {
  console.error(e.stack ?? e.message);
  process.exitCode = 1;
});
