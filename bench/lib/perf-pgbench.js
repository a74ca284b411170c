// pgbench runs and the numbers they print (PostgreSQL docs, "pgbench", section "Output"):
// `tps = N (without initial connection time)`, or `(including reconnection times)` with -C,
// `latency average = X ms`, and in 15+ `number of failed transactions: N`.
'use strict';
const { execFile } = require('node:child_process');
const { promisify } = require('node:util');
const { cpuMeter } = require('./perf-proc');

const run = promisify(execFile);

/** The workloads of the issue: select-only and tpcb-like at -c 8 and -c 64, and the connection rate. */
const WORKLOADS = [
  { id: 'select-c8', label: 'select-only -c 8', args: ['-S', '-c', '8'] },
  { id: 'select-c64', label: 'select-only -c 64', args: ['-S', '-c', '64'] },
  { id: 'tpcb-c8', label: 'tpcb-like -c 8', args: ['-c', '8'] },
  { id: 'tpcb-c64', label: 'tpcb-like -c 64', args: ['-c', '64'] },
  { id: 'connect-c8', label: 'connections/s (-S -C -c 8)', args: ['-S', '-C', '-c', '8'] },
];

/**
 * The TLS phase: the same select-only runs and connection rate with `sslmode=require` clients.
 * With -C every transaction is a new connection and so one TLS handshake on the client's leg.
 */
const TLS_WORKLOADS = [
  { id: 'select-c8', label: 'select-only -c 8', args: ['-S', '-c', '8'] },
  { id: 'select-c64', label: 'select-only -c 64', args: ['-S', '-c', '64'] },
  { id: 'connect-c8', label: 'handshakes/s (-S -C -c 8)', args: ['-S', '-C', '-c', '8'] },
];

/**
 * libpq's sslmode for a run, through PGSSLMODE: `disable` unless told. The primary has ssl on
 * when the TLS phase runs, and libpq's default (`prefer`) would then bring TLS into the plain
 * phases (end to end through HAProxy and through pgwarden's default passthrough).
 */
const pgEnv = (sslmode = 'disable') => ({ ...process.env, PGSSLMODE: sslmode });

/** Creates the pgbench tables (scale `scale`) on the server at port. */
async function initPgbench(pgbench, port, scale) {
  await run(pgbench, ['-i', '-q', '-s', String(scale), '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', 'postgres'], { maxBuffer: 16 << 20, env: pgEnv() });
}

/**
 * One pgbench run of `workload` against port: {tps, latencyMs, transactions, failed}. It lasts
 * `seconds` (-T), or, with `transactions`, that many per client (-t): the smoke run uses -t
 * because on a busy machine starting 64 connections can take longer than a short -T.
 * `sslmode` is libpq's (PGSSLMODE), `disable` unless told.
 */
async function runPgbench(pgbench, port, workload, { seconds, transactions }, { sslmode } = {}) {
  const length = transactions ? ['-t', String(transactions)] : ['-T', String(seconds)];
  const args = ['-n', ...workload.args, '-j', '2', ...length, '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', 'postgres'];
  let stdout;
  try {
    ({ stdout } = await run(pgbench, args, { maxBuffer: 16 << 20, timeout: ((seconds ?? 0) + 300) * 1000, env: pgEnv(sslmode) }));
  } catch (e) {
    throw new Error(`PGSSLMODE=${sslmode ?? 'disable'} pgbench ${args.join(' ')} failed (exit ${e.code}):\n${String(e.stderr ?? '').slice(-2000)}${String(e.stdout ?? '').slice(-1000)}`);
  }
  const tps = /tps = ([\d.]+)/.exec(stdout);
  const latency = /latency average = ([\d.]+) ms/.exec(stdout);
  if (/actually processed: 0\b/.test(stdout)) {
    throw new Error(`no transaction completed within ${length.join(' ')} (starting the clients' connections took the whole run; a busy machine or too short a run):\n${stdout}`);
  }
  if (!tps) throw new Error(`pgbench printed no tps:\n${stdout}`);
  return {
    tps: Number(tps[1]),
    latencyMs: latency ? Number(latency[1]) : null,
    transactions: Number(/number of transactions actually processed: (\d+)/.exec(stdout)?.[1] ?? NaN),
    failed: Number(/number of failed transactions: (\d+)/.exec(stdout)?.[1] ?? 0),
  };
}

/**
 * Every workload against every target (`targets`: name → {port, server?}), interleaved: for each
 * workload the targets one after another, round 2 in reverse order (a drift then does not always
 * favour the same target). Each run: pgbench's numbers and the proxy's CPU over it (`server`'s
 * pid; none for the server itself). A failed run is an error, and the others go on.
 * Returns {runs, errors}; `log` gets one line per run, starting with `prefix`.
 */
async function interleavedRounds(pgbench, targets, workloads, settings, { sslmode, phase, prefix = '', log }) {
  const runs = [];
  const errors = [];
  const names = Object.keys(targets);
  for (let round = 1; round <= settings.rounds; round++) {
    const order = round % 2 === 1 ? names : [...names].reverse();
    for (const w of workloads) {
      for (const target of order) {
        const proxy = targets[target].server;
        const meter = proxy ? cpuMeter(proxy.pid) : undefined;
        try {
          const r = await runPgbench(pgbench, targets[target].port, w, settings, { sslmode });
          const cpu = meter?.stop();
          runs.push({ workload: w.id, target, round, ...r, proxyCpuPercent: cpu ? cpu.cpuPercent : null, proxyCpuSeconds: cpu ? cpu.cpuSeconds : null });
          log(`${prefix}round ${round} ${w.label.padEnd(27)} ${target.padEnd(9)} ${r.tps.toFixed(0).padStart(7)} tps  ${String(r.latencyMs).padStart(7)} ms${cpu ? `  proxy CPU ${cpu.cpuPercent.toFixed(0)} %` : ''}`);
        } catch (e) {
          errors.push({ phase, workload: w.id, target, round, message: e.message });
          log(`${prefix}round ${round} ${w.label} ${target}: ERROR ${e.message.split('\n')[0]}`);
        }
      }
    }
  }
  return { runs, errors };
}

module.exports = { WORKLOADS, TLS_WORKLOADS, initPgbench, runPgbench, interleavedRounds };
