#!/usr/bin/env node
// bench/throughput: pgbench select-only against the primary directly and through pgwarden,
// interleaved (direct, pgwarden, pgwarden, direct, …) so drift and noise show up, then TPS and
// the ratio. Starts its own real primary on free ports and pgwarden as a separate process.
//
//   npm run build && node bench/throughput.js [--duration 20] [--clients 8] [--rounds 2]
'use strict';
const { spawn, execFile } = require('node:child_process');
const { mkdtempSync, writeFileSync, rmSync } = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseArgs, promisify } = require('node:util');
const { PgCluster } = require('../dist/harness/cluster');
const { findPgBinDir } = require('../dist/harness/binaries');
const { freePort } = require('../dist/harness/ports');

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '20' },
    clients: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '2' },
    scale: { type: 'string', default: '10' },
  },
});
const duration = Number(values.duration);
const clients = Number(values.clients);
const rounds = Number(values.rounds);

async function main() {
  const bin = findPgBinDir();
  const pgbench = path.join(bin, 'pgbench');
  const cluster = await PgCluster.create({ replicas: 0, settings: { fsync: 'off' } });
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgwarden-bench-'));
  let proxy;
  try {
    const port = await freePort();
    const cfg = path.join(dir, 'pgwarden.yaml');
    writeFileSync(cfg, `listeners:\n  - { name: rw, bind: "127.0.0.1:${port}", route: primary }\nbackends:\n  - { name: pg1, host: 127.0.0.1, port: ${cluster.primary.port} }\nhealth:\n  user: postgres\nlogging:\n  level: warn\n`);
    proxy = spawn(process.execPath, [path.join(__dirname, '..', 'dist', 'cli.js'), '--config', cfg], { stdio: 'inherit' });
    await run(pgbench, ['-i', '-q', '-s', values.scale, '-h', '127.0.0.1', '-p', String(cluster.primary.port), '-U', 'postgres', 'postgres']);
    await waitForPort(port);
    const targets = { direct: cluster.primary.port, pgwarden: port };
    const results = { direct: [], pgwarden: [] };
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? ['direct', 'pgwarden'] : ['pgwarden', 'direct'];
      for (const name of order) {
        const tps = await bench(pgbench, targets[name]);
        results[name].push(tps);
        console.log(`round ${r + 1} ${name.padEnd(8)} ${tps.toFixed(0)} tps`);
      }
    }
    const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
    const d = med(results.direct);
    const w = med(results.pgwarden);
    console.log(`\nselect-only -c ${clients} -j 2, ${duration} s x ${rounds} rounds`);
    console.log(`direct   ${d.toFixed(0)} tps`);
    console.log(`pgwarden ${w.toFixed(0)} tps  ratio ${(w / d).toFixed(2)}x direct`);
  } finally {
    proxy?.kill('SIGTERM');
    await cluster.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function bench(pgbench, port) {
  const { stdout } = await run(pgbench, ['-S', '-n', '-c', String(clients), '-j', '2', '-T', String(duration), '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', 'postgres']);
  const m = /tps = ([\d.]+)/.exec(stdout);
  if (!m) throw new Error(`pgbench printed no tps:\n${stdout}`);
  return Number(m[1]);
}

function run(cmd, args) {
  return promisify(execFile)(cmd, args, { maxBuffer: 16 << 20 });
}

async function waitForPort(port) {
  const net = require('node:net');
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((r) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => { s.destroy(); r(true); });
      s.on('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`pgwarden did not listen on ${port}`);
}

main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
