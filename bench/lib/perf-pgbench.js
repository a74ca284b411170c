// pgbench runs and the numbers they print (PostgreSQL docs, "pgbench", section "Output"):
// `tps = N (without initial connection time)`, or `(including reconnection times)` with -C,
// `latency average = X ms`, and in 15+ `number of failed transactions: N`.
'use strict';
const { execFile } = require('node:child_process');
const { promisify } = require('node:util');

const run = promisify(execFile);

/** The workloads of the issue: select-only and tpcb-like at -c 8 and -c 64, and the connection rate. */
const WORKLOADS = [
  { id: 'select-c8', label: 'select-only -c 8', args: ['-S', '-c', '8'] },
  { id: 'select-c64', label: 'select-only -c 64', args: ['-S', '-c', '64'] },
  { id: 'tpcb-c8', label: 'tpcb-like -c 8', args: ['-c', '8'] },
  { id: 'tpcb-c64', label: 'tpcb-like -c 64', args: ['-c', '64'] },
  { id: 'connect-c8', label: 'connections/s (-S -C -c 8)', args: ['-S', '-C', '-c', '8'] },
];

/** Creates the pgbench tables (scale `scale`) on the server at port. */
async function initPgbench(pgbench, port, scale) {
  await run(pgbench, ['-i', '-q', '-s', String(scale), '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', 'postgres'], { maxBuffer: 16 << 20 });
}

/**
 * One pgbench run of `workload` against port: {tps, latencyMs, transactions, failed}. It lasts
 * `seconds` (-T), or, with `transactions`, that many per client (-t): the smoke run uses -t
 * because on a busy machine starting 64 connections can take longer than a short -T.
 */
async function runPgbench(pgbench, port, workload, { seconds, transactions }) {
  const length = transactions ? ['-t', String(transactions)] : ['-T', String(seconds)];
  const args = ['-n', ...workload.args, '-j', '2', ...length, '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', 'postgres'];
  let stdout;
  try {
    ({ stdout } = await run(pgbench, args, { maxBuffer: 16 << 20, timeout: ((seconds ?? 0) + 300) * 1000 }));
  } catch (e) {
    throw new Error(`pgbench ${args.join(' ')} failed (exit ${e.code}):\n${String(e.stderr ?? '').slice(-2000)}${String(e.stdout ?? '').slice(-1000)}`);
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

module.exports = { WORKLOADS, initPgbench, runPgbench };
