#!/usr/bin/env node
// bench/soak: does the 100th failover leave pgwarden as it found it? A real primary and two
// synchronous replicas, pgwarden as its own process in front of them (rw, ro, TLS terminate,
// failover mode follow), a steady mixed load (bench/lib/soak-load.js), and a fault every
// --fault-every seconds drawn in turn (bench/lib/soak-faults.js): kill -9 of the primary with an
// external promote and the old primary rejoined by pg_rewind, SIGSTOP/SIGCONT of a replica, a
// replica flapping faster than `rise`, a planned switchover through the admin API (the old
// primary rejoined the same way), a reload that adds and then removes a backend, drain/ready of
// a replica. After each fault has settled, with the load paused, pgwarden's GET /debug/resources
// (after a forced GC) must come back within tolerance of its level before the fault
// (bench/lib/soak-resources.js); at the end, within a wider tolerance of its first level. Every
// acknowledged write must be on the final primary, and no write that started after a newer
// timeline was confirmed may have been acknowledged on an older one.
//
// With --idle N, N idle sessions go through an `idle` listener to a server that is never
// faulted (a standby with no upstream, drained after they are open so nothing else lands there),
// are sampled with `SELECT 1` every minute and must all answer at the end.
//
//   npm run build && flock /tmp/soak.lock node bench/soak.js --minutes 60 --fault-every 15 [--idle N]
//   node bench/soak.js --short [--results-dir DIR]    each fault kind once (CI: a few minutes at most)
//
// Prints a table per fault kind and the verdicts; writes bench/results/soak-<date>[-short].json
// and .svg (RSS, heap and handles over time). Exit 0 when every verdict holds, 1 otherwise.
'use strict';
const { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');
const { freePort } = require('../dist/harness/ports');
const { sleep } = require('./lib/failover-procs');
const { machineInfo } = require('./lib/failover-report');
const { makeCertificate } = require('./lib/perf-tls');
const { hardFdLimit } = require('./lib/perf-proc');
const { SoakCluster, frozenStandbyFrom } = require('./lib/soak-cluster');
const { startPgwarden } = require('./lib/soak-pgwarden');
const { SoakLoad, writeVerdicts, CREATE_TABLE, TABLE } = require('./lib/soak-load');
const { makeFaults, settle, SEQUENCE: LONG_SEQUENCE, SHORT_SEQUENCE, FAILOVER_KINDS } = require('./lib/soak-faults');
const { FINAL_TOLERANCE, MiB, sample, waitBack } = require('./lib/soak-resources');
const { IdleHolder } = require('./lib/soak-idle');
const { faultTable, svgPlot } = require('./lib/soak-report');

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    'fault-every': { type: 'string', default: '15' },
    short: { type: 'boolean', default: false },
    idle: { type: 'string', default: '0' },
    'no-tls': { type: 'boolean', default: false },
    'results-dir': { type: 'string' },
  },
});
const short = values.short;
const SEQUENCE = short ? SHORT_SEQUENCE : LONG_SEQUENCE;
const minutes = Number(values.minutes);
const faultEveryMs = Number(values['fault-every']) * 1000;
const idleCount = Number(values.idle);
if (!(minutes > 0) || !(faultEveryMs >= 0) || !Number.isInteger(idleCount) || idleCount < 0) {
  console.error('--minutes takes a positive number, --fault-every seconds (≥ 0), --idle a whole number');
  process.exit(2);
}
const resultsDir = path.resolve(values['results-dir'] ?? path.join(__dirname, 'results'));
const log = (line) => console.log(`${new Date().toISOString().slice(11, 19)} ${line}`);

const tempDirs = new Set();
let cluster;
let solo;
process.on('exit', () => {
  // A soak interrupted during the SIGSTOP fault must not leave a frozen server behind.
  for (const n of cluster?.nodes ?? []) cluster.signalAll(n, 'SIGCONT');
  solo?.stopSync();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(signal === 'SIGINT' ? 130 : 143));

async function main() {
  const started = new Date();
  const machine = machineInfo();
  const command = `node bench/soak.js ${process.argv.slice(2).join(' ')}`.trim();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgwarden-soak-'));
  tempDirs.add(dir);
  const cert = values['no-tls'] ? undefined : makeCertificate(dir);
  if (cert?.missing) log(`TLS: skipped (${cert.missing})`);

  log('cluster: primary + 2 synchronous replicas');
  cluster = await SoakCluster.create({ log });
  await cluster.query(cluster.primary, CREATE_TABLE);
  await cluster.cluster.waitForReplication();
  const fixed = [];
  if (idleCount > 0) {
    solo = await frozenStandbyFrom(cluster.cluster, { name: 'solo', port: await freePort(), maxConnections: idleCount + 50, baseDir: cluster.cluster.baseDir });
    fixed.push({ name: 'solo', port: solo.port, fixed: true });
    log(`solo: a standby with no upstream on port ${solo.port}, max_connections ${idleCount + 50}`);
  }
  mkdirSync(resultsDir, { recursive: true });
  // pgwarden's own lines (warn and above) beside the results, for a verdict that failed.
  const logFile = path.join(resultsDir, `soak-${started.toISOString().slice(0, 10)}${short ? '-short' : ''}.pgwarden.log`);
  writeFileSync(logFile, '');
  const pg = await startPgwarden({ dir, backends: [...cluster.nodes.map((n) => ({ name: n.name, port: n.port })), ...fixed], cert: cert?.missing ? undefined : cert, idle: idleCount > 0, logFile });
  log(`pgwarden pid ${pg.pid}: rw ${pg.ports.rw}, ro ${pg.ports.ro}${idleCount ? `, idle ${pg.ports.idle}` : ''}, admin ${pg.ports.admin}`);

  const idle = idleCount > 0 ? await openIdle(pg, idleCount) : undefined;

  const load = new SoakLoad({ rw: pg.ports.rw, ro: pg.ports.ro, lifespanMs: short ? [2000, 5000] : [10_000, 30_000] });
  load.start();
  const samples = [];
  const faults = [];
  await settle({ cluster, pg, rwPort: pg.ports.rw, fixedBackends: fixed.map((b) => b.name) });
  await sleep(short ? 2000 : 10_000); // warm-up: the first sessions, TLS contexts, JIT
  const first = { sample: await pausedSample(pg, load) };
  let before = first.sample;
  samples.push(before);
  log(`baseline: RSS ${(before.rss / MiB).toFixed(1)} MiB, heap ${(before.heap / MiB).toFixed(1)} MiB, ${before.handles} handles, ${before.fds} fds, ${before.sessions} sessions`);

  let stopSampling = false;
  const sampler = (async () => {
    while (!stopSampling) {
      await sleep(short ? 2000 : 10_000);
      if (!stopSampling) samples.push(await sample(pg).catch(() => samples[samples.length - 1]));
    }
  })();
  let nextIdleSample = Date.now() + 60_000;

  const faultImpl = makeFaults({ cluster, pg, extraHost: '127.0.0.2', log });
  const endAt = Date.now() + minutes * 60_000;
  for (let i = 0; short ? i < SEQUENCE.length : Date.now() < endAt; i++) {
    const kind = SEQUENCE[i % SEQUENCE.length];
    const at = Date.now();
    const loadBefore = load.snapshot();
    const record = { n: i + 1, kind, at };
    try {
      record.detail = await faultImpl[kind]();
      await settle({ cluster, pg, rwPort: pg.ports.rw, fixedBackends: fixed.map((b) => b.name) });
      record.recoverMs = Date.now() - at;
    } catch (err) {
      record.error = String(err.message).split('\n').slice(0, 3).join(' | ');
      log(`fault ${i + 1} ${kind}: ERROR ${record.error}`);
      try {
        await settle({ cluster, pg, rwPort: pg.ports.rw, fixedBackends: fixed.map((b) => b.name), timeoutMs: 180_000 });
      } catch (again) {
        record.fatal = String(again.message).split('\n')[0];
        faults.push(record);
        log(`could not get back to a whole cluster: ${record.fatal}; ending the run`);
        break;
      }
    }
    const back = await waitBack({ pg, load, before });
    record.resources = { back: back.back, delta: back.delta, out: back.out, waitedMs: back.waitedMs };
    const loadAfter = load.snapshot();
    record.writesFailed = loadAfter.writes.failed - loadBefore.writes.failed;
    record.writesOk = loadAfter.writes.ok - loadBefore.writes.ok;
    faults.push(record);
    samples.push(back.sample);
    before = back.sample;
    log(
      `fault ${String(i + 1).padStart(3)} ${kind.padEnd(15)} ${record.error ? 'ERROR' : `recovered ${(record.recoverMs / 1000).toFixed(1)} s`}, ` +
        `${back.back ? 'back' : `NOT back (${back.out})`}: RSS ${(back.sample.rss / MiB).toFixed(1)} MiB, heap ${(back.sample.heap / MiB).toFixed(1)} MiB, ` +
        `${back.sample.handles} handles, ${back.sample.fds} fds; writes ok ${record.writesOk}, failed ${record.writesFailed}${record.detail?.rejoin ? `; rejoin ${record.detail.rejoin}` : ''}`,
    );
    if (!pg.alive()) {
      log('pgwarden exited');
      break;
    }
    if (idle && Date.now() > nextIdleSample) {
      const s = await idle.ask(50);
      log(`idle sessions: ${s.ok}/${s.asked} sampled answered, ${s.closed} closed so far`);
      nextIdleSample = Date.now() + 60_000;
    }
    const wait = at + faultEveryMs - Date.now();
    if (wait > 0 && !short) await sleep(Math.min(wait, Math.max(0, endAt - Date.now())));
  }

  stopSampling = true;
  await sampler;
  const final = await waitBack({ pg, load, before: first.sample, tol: FINAL_TOLERANCE, timeoutMs: 60_000 });
  samples.push(final.sample);
  await load.stop();
  const idleEnd = idle ? await idle.ask(undefined) : undefined;
  const ids = (await cluster.query(cluster.primary, `SELECT id FROM ${TABLE}`)).map((r) => r.id);
  const writes = writeVerdicts(load.acked, ids, cluster.promotions);
  const alive = pg.alive();
  idle?.closeAll();
  await pg.stop();
  await solo?.stop();
  await cluster.destroy();

  const lostByKind = {};
  for (const w of writes.lost) {
    const f = [...faults].reverse().find((x) => x.at <= Number(load.acked.find((a) => a[0] === w.id)?.[4] ?? 0));
    lostByKind[f?.kind ?? 'before any fault'] = (lostByKind[f?.kind ?? 'before any fault'] ?? 0) + 1;
  }
  const failovers = faults.filter((f) => FAILOVER_KINDS.has(f.kind) && !f.error).length;
  const verdicts = {
    'pgwarden alive at the end': alive,
    'every fault recovered': faults.every((f) => !f.error) && !faults.some((f) => f.fatal),
    'resources back within tolerance after every fault': faults.every((f) => f.resources?.back),
    'resources at the end within the final tolerance of the first level': final.back,
    'no acknowledged write lost': writes.lost.length === 0,
    'no write acknowledged on an older timeline after a newer one was confirmed': writes.stale.length === 0,
    ...(idle ? { 'every idle session open and answering at the end': idleEnd.ok === idle.opened && idleEnd.closed === 0 } : {}),
  };
  const table = faultTable(faults, lostByKind);
  const durationMin = (Date.now() - started.getTime()) / 60_000;
  console.log(`\n${table}\n`);
  console.log(
    `${faults.length} faults in ${durationMin.toFixed(1)} min, ${failovers} of them failovers or switchovers; ${writes.acked} acknowledged writes, ` +
      `${writes.lost.length} lost, ${writes.stale.length} on a stale timeline; final vs first: RSS ${signedMiB(final.delta.rss)}, heap ${signedMiB(final.delta.heap)}, ` +
      `handles ${final.delta.handles}, fds ${final.delta.fds}, sessions ${final.delta.sessions}${final.out ? ` (out: ${final.out})` : ''}`,
  );
  if (idle) console.log(`idle sessions: ${idle.opened} held${idle.limit ? ` (${idle.limit})` : ''}; at the end ${idleEnd.ok} answered SELECT 1, ${idleEnd.closed} closed`);
  for (const [k, v] of Object.entries(verdicts)) console.log(`${v ? 'PASS' : 'FAIL'}  ${k}`);
  if (pg.problems.length) console.log(`pgwarden error lines (last ${Math.min(5, pg.problems.length)} of ${pg.problems.length}):\n${pg.problems.slice(-5).join('\n')}`);

  mkdirSync(resultsDir, { recursive: true });
  const stem = path.join(resultsDir, `soak-${started.toISOString().slice(0, 10)}${short ? '-short' : ''}`);
  machine.loadAfter = os.loadavg().map((l) => l.toFixed(2));
  const result = {
    command,
    started: started.toISOString(),
    durationMin,
    machine,
    settings: { minutes, faultEverySeconds: faultEveryMs / 1000, short, idle: idleCount, tls: !!cert && !cert.missing, sequence: SEQUENCE, tolerance: { perFault: require('./lib/soak-resources').TOLERANCE, final: FINAL_TOLERANCE } },
    verdicts,
    table,
    failovers,
    writes: { acked: writes.acked, lost: writes.lost.slice(0, 100), stale: writes.stale.slice(0, 100), lostCount: writes.lost.length, staleCount: writes.stale.length },
    promotions: cluster.promotions,
    lateRejoins: cluster.lateRejoins ?? 0,
    load: load.snapshot(),
    final: { back: final.back, delta: final.delta, out: final.out, first: first.sample, last: final.sample },
    idle: idle ? { asked: idleCount, opened: idle.opened, limit: idle.limit, cost: idle.cost, failures: idle.failures, samples: idle.samples, end: idleEnd } : undefined,
    faults,
    samples: samples.map(({ byType, ...s }) => s),
    pgwardenErrors: pg.problems.slice(-20),
  };
  writeFileSync(`${stem}.json`, `${JSON.stringify(result, null, 1)}\n`);
  writeFileSync(`${stem}.svg`, svgPlot({ samples, faults, title: `pgwarden soak ${started.toISOString().slice(0, 16)}Z: ${faults.length} faults in ${durationMin.toFixed(0)} min` }));
  console.log(`results: ${path.relative(process.cwd(), stem)}.json, .svg`);
  return Object.values(verdicts).every(Boolean);
}

async function pausedSample(pg, load) {
  await load.pause();
  try {
    return await sample(pg);
  } finally {
    load.resume();
  }
}

/** Opens the idle sessions while only `solo` takes sessions of the idle listener, then drains solo. */
async function openIdle(pg, n) {
  const replicas = cluster.replicas().map((r) => r.name);
  for (const r of replicas) await pg.post(`/backends/${r}/drain`);
  const holder = new IdleHolder(pg.ports.idle);
  const started = Date.now();
  const memBefore = memAvailable();
  const pgwBefore = await pg.resources();
  const res = await holder.open(n, { onProgress: (k) => k % 1000 === 0 && log(`idle sessions: ${k} open`) });
  holder.opened = res.opened;
  holder.failures = res.failures;
  // What one idle session costs the machine (PostgreSQL backend + pgwarden + this holder) and
  // pgwarden alone, for the limit stated in bench/README.md.
  await sleep(5000);
  const pgwAfter = await pg.resources();
  holder.cost = {
    machineBytesPerSession: Math.round((memBefore - memAvailable()) / Math.max(1, res.opened)),
    pgwardenRssBytesPerSession: Math.round((pgwAfter.rssBytes - pgwBefore.rssBytes) / Math.max(1, res.opened)),
    pgwardenFdsPerSession: Number(((pgwAfter.openFds - pgwBefore.openFds) / Math.max(1, res.opened)).toFixed(2)),
    fdHardLimit: hardFdLimit(),
  };
  log(`idle session cost: ${JSON.stringify(holder.cost)}`);
  if (res.opened < n) holder.limit = `stopped at ${res.opened}: ${JSON.stringify(res.failures)}`;
  log(`idle sessions: ${res.opened} of ${n} open in ${((Date.now() - started) / 1000).toFixed(0)} s${holder.limit ? ` (${holder.limit})` : ''}`);
  await pg.post('/backends/solo/drain');
  for (const r of replicas) await pg.post(`/backends/${r}/ready`);
  return holder;
}

/** MemAvailable from /proc/meminfo, in bytes. */
function memAvailable() {
  const m = /MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

const signedMiB = (b) => `${b >= 0 ? '+' : ''}${(b / MiB).toFixed(1)} MiB`;

main().then(
  (ok) => process.exit(ok ? 0 : 1),
  (err) => {
    console.error(err?.stack ?? err);
    process.exit(1);
  },
);
