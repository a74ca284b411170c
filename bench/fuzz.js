#!/usr/bin/env node
// Runs the property-based fuzz tests of the protocol readers at scale, one target (test file)
// after another, and prints for each how many generated inputs ran, in how long, and whether
// any property failed. CPU-heavy: run it alone, e.g.
//   flock /tmp/bench.lock node bench/fuzz.js --runs 1000000
//   node bench/fuzz.js --runs 100000 --only frame-tracker,sasl-plus-filter --seed 42
// Each property of a target gets --runs inputs (FUZZ_RUNS); --seed (FUZZ_SEED) replays a run.
// A failure prints fast-check's counterexample and seed; replay it with the same --seed.
// The numbers of the last recorded run are in bench/README.md, "Reliability" › "Fuzzing".
'use strict';
const { spawn } = require('node:child_process');
const path = require('node:path');

const TARGETS = ['first-packet', 'startup-watcher', 'frame-tracker', 'sasl-plus-filter'];

function parseArgs(argv) {
  const opts = { runs: 1_000_000, only: TARGETS, seed: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--runs') opts.runs = Number(value());
    else if (a === '--only') opts.only = value().split(',');
    else if (a === '--seed') opts.seed = value();
    else if (a === '--help' || a === '-h') {
      console.log('usage: node bench/fuzz.js [--runs N (1000000)] [--only first-packet,startup-watcher,frame-tracker,sasl-plus-filter] [--seed S]');
      process.exit(0);
    } else throw new Error(`unknown argument ${a} (try --help)`);
  }
  if (!Number.isInteger(opts.runs) || opts.runs < 1) throw new Error('--runs must be a positive integer');
  for (const t of opts.only) if (!TARGETS.includes(t)) throw new Error(`unknown target ${t}; targets: ${TARGETS.join(', ')}`);
  return opts;
}

/** Runs one target's test file under tap; resolves with its properties' input counts and its outcome. */
function runTarget(target, opts) {
  const file = path.join('test', 'unit', `fuzz-${target}.test.ts`);
  const env = { ...process.env, FUZZ_RUNS: String(opts.runs) };
  if (opts.seed !== undefined) env.FUZZ_SEED = String(opts.seed);
  const started = process.hrtime.bigint();
  return new Promise((resolve) => {
    const child = spawn('npx', ['tap', '--reporter=tap', '--timeout=86400', file], { cwd: path.join(__dirname, '..'), env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (b) => (out += b));
    child.on('close', (code) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const inputs = [...out.matchAll(/ok \d+ - (\d+) generated inputs/g)].reduce((n, m) => n + Number(m[1]), 0);
      const properties = (out.match(/ok \d+ - \d+ generated inputs/g) ?? []).length;
      const failed = code !== 0;
      if (failed) process.stdout.write(out);
      resolve({ target, inputs, properties, seconds, failed });
    });
  });
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const os = require('node:os');
  console.log(`fuzz: ${opts.runs} inputs per property${opts.seed !== undefined ? `, seed ${opts.seed}` : ''}; load average ${os.loadavg()[0].toFixed(1)} on ${os.cpus().length} cores`);
  const rows = [];
  for (const target of opts.only) {
    const r = await runTarget(target, opts);
    rows.push(r);
    console.log(`${target.padEnd(18)} ${String(r.inputs).padStart(10)} inputs in ${r.properties} properties  ${r.seconds.toFixed(0).padStart(5)} s  ${r.failed ? 'FAILED' : 'ok'}`);
  }
  console.log(`load average at the end ${os.loadavg()[0].toFixed(1)}`);
  process.exitCode = rows.some((r) => r.failed) ? 1 : 0;
}

main().catch((err) => {
  console.error(err.message);
  process.exitCode = 2;
});
