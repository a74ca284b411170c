#!/usr/bin/env node
// bench/survive: sessions that survive a failover (issue 19, point 4). Each trial is a fresh
// primary + replica cluster behind a fresh pgwarden process (auth.mode proxy, sessions.survive on,
// failover.mode follow, queue_timeout 60s) and one node-postgres pg.Pool of --idle + --active
// connections (default 200 + 16) as a SCRAM-SHA-256 user, each connection with its own
// application_name; --active workers run short statements (an insert or a select) a few ms apart,
// so the other connections stay idle. The fault, alternately:
//   switchover  POST /switchover {"to":"pg2"} on pgwarden's admin API
//   crash       kill -9 of pg1's postmaster, then `pg_ctl promote` of pg2 (as an operator would)
// Measured per trial: client-visible errors, filed by the state of their connection at the fault
// (in flight: taken by a worker; idle: in the pool — the goal is 0 of these), pool 'error' events
// included; then one statement on every pooled connection (it must answer from pg2 with its own
// application_name); the pause each worker saw (longest gap between its successful statements
// around the fault); pgwarden's session.moved / session.not_moved lines (pauseMs, reason).
//
//   npm run build && flock /tmp/bench.lock node bench/survive.js [--switchovers 10] [--crashes 10] [--quick] [--no-readme]
//
// --until HH:MM (UTC): start no trial after that time (the run then reports the trials it made).
// --quick: one switchover and one crash, raw JSON with a -quick suffix, bench/README.md left alone.
// --no-readme: bench/README.md left alone, raw JSON with a -no-readme suffix.
'use strict';
const { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');
const { PgCluster } = require('../dist/harness/cluster');
const { authFunctionSql, passwordHba } = require('../dist/harness/proxy-auth-setup');
const { killAllSync, sleep, waitUntil } = require('./lib/failover-procs');
const { startPgwarden } = require('./lib/failover-targets');
const { SurviveClients, WORK_TABLE } = require('./lib/survive-clients');
const { countBy, machineInfo, median, replaceReadmeSection } = require('./lib/failover-report');

const { values } = parseArgs({
  options: {
    switchovers: { type: 'string', default: '10' },
    crashes: { type: 'string', default: '10' },
    idle: { type: 'string', default: '200' },
    active: { type: 'string', default: '16' },
    quick: { type: 'boolean', default: false },
    'no-readme': { type: 'boolean', default: false },
    until: { type: 'string' },
  },
});
const SWITCHOVERS = values.quick ? 1 : Number(values.switchovers);
const CRASHES = values.quick ? 1 : Number(values.crashes);
const ACTIVE = Number(values.active);
const TOTAL = Number(values.idle) + ACTIVE;
for (const n of [SWITCHOVERS, CRASHES, ACTIVE, TOTAL]) {
  if (!Number.isInteger(n) || n < 0) {
    console.error('--switchovers, --crashes, --idle and --active take whole numbers');
    process.exit(2);
  }
}
const USER = 'bench_scram';
const PASSWORD = 'bench-scram-pw';
const AUTH_PASSWORD = 'bench-auth-pw';
const ADMIN_TOKEN = 'bench-admin-token';
const HEADING = '## Sessions that survive a failover';
const AFTER_RECOVERY_MS = 1000; // keep the workers going after each has written to pg2
const RECOVERY_TIMEOUT_MS = 90_000;

const tempDirs = new Set();
process.on('exit', () => {
  killAllSync();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});
// A signal becomes a normal exit, so that every 'exit' handler (ours, the cluster harness's) runs.
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(signal === 'SIGINT' ? 130 : 143));

/** The README's auth function and user, a SCRAM user asked for its password over TCP, the work table. */
async function prepare(cluster) {
  const primary = cluster.primary;
  for (const sql of [
    ...authFunctionSql(AUTH_PASSWORD),
    `CREATE ROLE ${USER} LOGIN PASSWORD '${PASSWORD}'`,
    WORK_TABLE,
    `GRANT SELECT, INSERT ON survive_work TO ${USER}`,
    `GRANT USAGE ON SEQUENCE survive_work_id_seq TO ${USER}`,
  ]) {
    await cluster.query(primary, sql);
  }
  await cluster.waitForReplication();
  const hba = passwordHba(undefined, { [USER]: 'scram-sha-256' });
  for (const node of cluster.nodes) {
    writeFileSync(path.join(node.dataDir, 'pg_hba.conf'), hba);
    await cluster.query(node, 'SELECT pg_reload_conf()');
  }
}

/** One fault on a fresh cluster behind a fresh pgwarden. Never throws: a failure is a result. */
async function trial(kind) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgwarden-survive-'));
  tempDirs.add(dir);
  const moved = [];
  const notMoved = [];
  let cluster;
  let target;
  let clients;
  const result = { kind };
  try {
    cluster = await PgCluster.create({
      replicas: 1,
      settings: { max_connections: String(TOTAL + 50) },
      // The harness logs this right before process.kill(pid, 'SIGKILL'): the moment of the crash.
      log: (line) => /SIGKILL postmaster/.test(line) && clients?.faultAt === undefined && clients?.snapshot(),
    });
    const [pg1, pg2] = cluster.nodes;
    await prepare(cluster);
    process.env.BENCH_AUTH_PASSWORD = AUTH_PASSWORD;
    target = await startPgwarden(cluster, dir, {
      admin: true,
      adminToken: ADMIN_TOKEN,
      failover: '  mode: follow\n  queue_timeout: 60s',
      extra: 'auth:\n  mode: proxy\n  user: pgwarden_auth\n  password_env: BENCH_AUTH_PASSWORD\nsessions:\n  survive: on\n',
      onEntry(entry) {
        if (entry.event === 'session.moved') moved.push({ pauseMs: entry.pauseMs, trigger: entry.trigger, path: `${entry.from}→${entry.to}`, ...(entry.serverSaid && { serverSaid: entry.serverSaid }) });
        if (entry.event === 'session.not_moved') notMoved.push({ reason: entry.reason, trigger: entry.trigger });
      },
    });
    await target.ready();
    clients = new SurviveClients({ port: target.port, user: USER, password: PASSWORD, total: TOTAL, active: ACTIVE });
    await clients.warm();
    clients.start();
    await waitUntil('every worker to run on pg1', () => clients.allOn(pg1.port), 30_000);
    await sleep(1000);

    if (kind === 'switchover') {
      clients.snapshot();
      const res = await fetch(`${target.adminUrl}/switchover`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ to: pg2.name }),
        signal: AbortSignal.timeout(120_000),
      });
      result.switchover = { status: res.status, tookMs: Date.now() - clients.faultAt, body: await res.json().catch(() => undefined) };
      if (!res.ok) throw new Error(`POST /switchover: HTTP ${res.status} ${JSON.stringify(result.switchover.body)}`);
    } else {
      await cluster.kill9(pg1);
      await cluster.promote(pg2);
      result.promotedMs = Date.now() - clients.faultAt;
    }
    await waitUntil('every worker to write to pg2 through pgwarden', () => clients.allOn(pg2.port), RECOVERY_TIMEOUT_MS);
    result.recoveredMs = Date.now() - clients.faultAt;
    await sleep(AFTER_RECOVERY_MS);
    await clients.stop();
    result.check = await clients.checkAll(pg2.port);
    const atFault = countBy([...clients.clients].map((c) => c.benchAtFault ?? 'new'));
    result.connections = { atFault };
    result.pauses = clients.pauses();
  } catch (e) {
    result.error = String(e?.stack ?? e).slice(0, 2000);
    result.tail = target?.tail();
  } finally {
    await clients?.stop().catch(() => undefined);
    await clients?.end();
    await target?.stop();
    await cluster?.destroy();
    rmSync(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
  }
  const errs = clients?.errors ?? [];
  // After a kill -9 the orphaned backends live on for a moment: a statement sent before
  // pgwarden has seen the crash goes to a dead server (the backend answers "terminating
  // connection due to unexpected postmaster exit", or the socket closes); pgwarden cannot know
  // whether it ran, so that session does not move ("a request was in flight"). Errors are filed
  // by when their statement was sent: before the kill, after it but before pgwarden marked pg1
  // down, and everything else — which, on a connection that existed at the fault, is the goal-0
  // column (at a switchover every error is).
  const faultAt = clients?.faultAt;
  const detectedAt = target?.downs.find((at) => at >= (faultAt ?? Infinity));
  if (detectedAt !== undefined) result.detectedMs = detectedAt - faultAt;
  for (const e of errs) {
    if (e.sentAt !== undefined && faultAt !== undefined) e.sentSinceFaultMs = e.sentAt - faultAt;
    const query = kind === 'crash' && e.phase === 'query' && e.sentAt !== undefined && faultAt !== undefined;
    if (query && e.sentAt < faultAt) e.kind = 'sent before the kill';
    else if (query && detectedAt !== undefined && e.sentAt < detectedAt) e.kind = 'sent before pgwarden saw the crash';
    else if (e.where === 'idle' || e.where === 'in-flight') e.kind = 'connection of the fault';
    else e.kind = 'other';
  }
  const n = (k) => errs.filter((e) => e.kind === k).length;
  result.errors = { beforeKill: n('sent before the kill'), beforeDetection: n('sent before pgwarden saw the crash'), goalZero: n('connection of the fault'), other: n('other') };
  result.errorList = errs.slice(0, 500);
  result.moved = { count: moved.length, pauseMs: pauseStats(moved.map((m) => m.pauseMs)), paths: countBy(moved.map((m) => `${m.path} (${m.trigger}${m.serverSaid ? `: ${m.serverSaid}` : ''})`)) };
  result.notMoved = { count: notMoved.length, reasons: countBy(notMoved.map((n) => n.reason)) };
  return result;
}

function pauseStats(xs) {
  const n = xs.filter((x) => typeof x === 'number');
  return n.length ? { median: median(n), max: Math.max(...n) } : {};
}

const ms = (x) => (x === undefined ? '-' : String(Math.round(x)));

function trialLine(i, r) {
  if (r.error) return `trial ${i} ${r.kind}: FAILED ${r.error.split('\n')[0]}`;
  return `trial ${i} ${r.kind.padEnd(10)} errors: statement sent before the kill ${r.errors.beforeKill}, after it before pgwarden saw the crash ${r.errors.beforeDetection}, others on connections of the fault ${r.errors.goalZero}, other ${r.errors.other}; checked ${r.check.checked} idle-at-fault connections: wrong server ${r.check.wrongServer}, application_name lost ${r.check.stateLost}; worker pause median ${ms(median(r.pauses))} max ${ms(Math.max(...r.pauses))} ms; moved ${r.moved.count} (pause median ${ms(r.moved.pauseMs.median)} max ${ms(r.moved.pauseMs.max)} ms), not moved ${r.notMoved.count} ${JSON.stringify(r.notMoved.reasons)}`;
}

function summaryRow(kind, rs) {
  const ok = rs.filter((r) => !r.error);
  const sum = (f) => ok.reduce((a, r) => a + f(r), 0);
  const workerMedians = ok.map((r) => median(r.pauses));
  const workerMax = ok.flatMap((r) => r.pauses);
  const movedMax = ok.map((r) => r.moved.pauseMs.max).filter((x) => x !== undefined);
  const movedMed = ok.map((r) => r.moved.pauseMs.median).filter((x) => x !== undefined);
  const took = ok.map((r) => r.switchover?.body?.durationMs ?? r.promotedMs).filter((x) => x !== undefined);
  const reasons = countBy(ok.flatMap((r) => Object.entries(r.notMoved.reasons).flatMap(([k, v]) => Array(v).fill(k))));
  return (
    `| ${kind} | ${ok.length}/${rs.length} | ${ms(median(took))} | **${sum((r) => r.errors.goalZero)}** | ${kind === 'crash' ? sum((r) => r.errors.beforeKill) : '-'} | ${kind === 'crash' ? sum((r) => r.errors.beforeDetection) : '-'} | ${sum((r) => r.errors.other)} | ` +
    `${sum((r) => r.check.checked)} / ${sum((r) => r.check.wrongServer)} / ${sum((r) => r.check.stateLost)} | ` +
    `${ms(median(workerMedians))} | ${workerMax.length ? ms(Math.max(...workerMax)) : '-'} | ${sum((r) => r.moved.count)} | ${ms(median(movedMed))} / ${movedMax.length ? ms(Math.max(...movedMax)) : '-'} | ` +
    `${sum((r) => r.notMoved.count)}${Object.keys(reasons).length ? ` (${Object.entries(reasons).map(([k, v]) => `${v}× ${k}`).join('; ')})` : ''} |`
  );
}

/** The auth-cost rows of bench/README.md's "Authentication at the proxy" table, quoted as they are. */
function authCostRows(readme) {
  const text = readFileSync(readme, 'utf8');
  // That section only: this one quotes the same rows, and must not quote its own copy again.
  const from = text.indexOf('\n## Authentication at the proxy\n');
  if (from < 0) return [];
  const to = text.indexOf('\n## ', from + 1);
  const section = text.slice(from, to < 0 ? undefined : to);
  return section.split('\n').filter((l) => /^\| (direct|pgwarden passthrough|pgwarden auth\.mode proxy) \|/.test(l));
}

async function main() {
  const machine = machineInfo();
  const started = new Date();
  const command = `npm run build && flock /tmp/bench.lock node bench/survive.js${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}`;
  console.log(`${SWITCHOVERS} switchover(s), ${CRASHES} crash(es), ${TOTAL} pooled connections (${ACTIVE} active); ${machine.nproc} CPUs, load average ${machine.loadBefore.join(' ')}`);
  const order = [];
  for (let i = 0; i < Math.max(SWITCHOVERS, CRASHES); i++) {
    if (i < SWITCHOVERS) order.push('switchover');
    if (i < CRASHES) order.push('crash');
  }
  const trials = [];
  const until = values.until === undefined ? undefined : Date.parse(`${new Date().toISOString().slice(0, 10)}T${values.until}:00Z`);
  for (const [i, kind] of order.entries()) {
    if (until !== undefined && Date.now() > until) {
      console.log(`--until ${values.until} UTC reached: ${order.length - i} trial(s) not run`);
      break;
    }
    const r = await trial(kind);
    trials.push(r);
    console.log(trialLine(i + 1, r));
    if (r.error && r.tail) console.log(`  pgwarden tail:\n${r.tail}`);
    if (r.errors.goalZero > 0 || r.errors.other > 0) console.log(`  errors: ${JSON.stringify(r.errorList.filter((e) => e.kind === 'connection of the fault' || e.kind === 'other').slice(0, 20))}`);
  }
  machine.loadAfter = os.loadavg().map((l) => l.toFixed(2));
  const header = [
    '| fault | trials ok | fault took ms, median | client errors (goal 0) | errors: statement sent before the kill | errors: sent after the kill, before pgwarden saw it | errors on connections opened after the fault | idle-at-fault connections checked / on the wrong server / application_name lost | worker pause ms, median | worker pause ms, max | sessions moved | pgwarden move pause ms, median / max | not moved (reasons) |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|',
  ];
  const kinds = ['switchover', 'crash'].filter((k) => trials.some((r) => r.kind === k));
  const table = [...header, ...kinds.map((k) => summaryRow(k, trials.filter((r) => r.kind === k)))].join('\n');
  console.log(`\n${table}\nload average before ${machine.loadBefore.join(' ')}, after ${machine.loadAfter.join(' ')}`);

  const date = started.toISOString().slice(0, 10);
  const resultsDir = path.join(__dirname, 'results');
  mkdirSync(resultsDir, { recursive: true });
  // A run that leaves bench/README.md alone must not overwrite the raw results the README cites.
  const suffix = values.quick ? '-quick' : values['no-readme'] ? '-no-readme' : '';
  const jsonFile = path.join(resultsDir, `survive-${date}${suffix}.json`);
  writeFileSync(jsonFile, `${JSON.stringify({ command, started: started.toISOString(), machine, switchovers: SWITCHOVERS, crashes: CRASHES, total: TOTAL, active: ACTIVE, trials }, null, 2)}\n`);
  console.log(`raw results: ${path.relative(process.cwd(), jsonFile)}`);
  if (values.quick || values['no-readme']) return;
  const readme = path.join(__dirname, 'README.md');
  const busy = Number(machine.loadBefore[0]) > machine.nproc;
  const made = (k) => trials.filter((r) => r.kind === k).length;
  const section = [
    HEADING,
    '',
    `\`${command}\` (${started.toISOString().slice(0, 16)} UTC; ${machine.nproc} vCPU ${machine.cpu}, ${machine.memoryGiB} GiB, Node ${machine.node}, ${machine.postgres}).`,
    `Load average before ${machine.loadBefore.join(' ')}, after ${machine.loadAfter.join(' ')}.` +
      (busy ? ' **The machine was busy with other work (a soak run): the error counts hold, the pauses are longer than on an idle machine.**' : ''),
    '',
    `${made('switchover')} planned switchover(s) and ${made('crash')} crash failover(s)` +
      (made('switchover') < SWITCHOVERS || made('crash') < CRASHES ? ` (of ${SWITCHOVERS} + ${CRASHES} asked: \`--until\` stopped the run; **not the full 10 + 10**)` : '') +
      ', interleaved, each on a fresh primary + replica',
    '(asynchronous streaming) behind a fresh pgwarden process: `auth.mode: proxy`, `sessions.survive: on`,',
    '`failover.mode: follow`, `queue_timeout: 60s`. One node-postgres `pg.Pool` (max ' + TOTAL + ', `idleTimeoutMillis: 0`) warmed',
    `to ${TOTAL} connections as a SCRAM-SHA-256 user, each with its own \`SET application_name\`; ${ACTIVE} workers take a connection,`,
    'run one statement (an insert or a select, alternately) and give it back, 3–7 ms apart; the pool hands out its most',
    `recently released connection, so about ${TOTAL - ACTIVE} connections stay idle. Switchover: \`POST /switchover {"to":"pg2"}\`.`,
    'Crash: kill -9 of pg1\'s postmaster, then `pg_ctl promote` of pg2. Every client-visible error counts: a failed',
    'statement, a pool `error` event on an idle connection, a failure of the check that follows each fault (every',
    'connection that existed at the fault runs one statement and must answer from pg2 with its own application_name).',
    'At a crash, an error on a statement sent before the kill (a transaction in flight at the crash), or sent after',
    'the kill but before pgwarden saw the crash (its `backend.down` line; until then the orphaned backends still take',
    'statements and answer "terminating connection due to unexpected postmaster exit", so pgwarden cannot know whether',
    'the statement ran and does not move the session: "a request was in flight") is expected and counted apart; every',
    'other error on a connection that existed at the fault is in the goal-0 column, and at a switchover every error is.',
    'Worker pause: the longest gap between a worker\'s successful statements around the fault (median across workers and',
    'trials, and the largest). "Fault took": the switchover\'s own `durationMs` (drain, catch-up, promote), or kill →',
    '`pg_ctl promote` returned; a statement sent in that time waits for it. pgwarden\'s own pause per moved session is',
    'the `pauseMs` of its `session.moved` lines.',
    '',
    table,
    '',
    'The cost of authentication at the proxy (every new connection logs in twice: client ↔ pgwarden, pgwarden ↔ server)',
    'is measured in "Authentication at the proxy" above; its rows, as they stand:',
    '',
    '| target | connections/s | range | vs direct | pgwarden ms CPU / connection | failed |',
    '|---|--:|--:|--:|--:|--:|',
    ...authCostRows(readme),
    '',
    `Raw results: \`bench/results/${path.basename(jsonFile)}\`.`,
    '',
  ].join('\n');
  replaceReadmeSection(readme, HEADING, section);
  console.log(`bench/README.md: "${HEADING}" updated`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
