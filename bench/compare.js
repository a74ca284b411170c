#!/usr/bin/env node
// A/B of pgwarden builds on one workload: how each hot-path change in bench/README.md
// ("Changes, measured") was kept or dropped. Starts a real primary, then runs pgbench against
// each target in turn — interleaved, `--rounds` times, the order reversed every other round — and
// prints TPS and the proxy's CPU per transaction (utime+stime from /proc/<pid>/stat over the
// run, divided by the transactions): the cost of the proxy itself, which moves less with
// machine noise than TPS does.
//
//   npm run build
//   git worktree add /tmp/before <commit> && (cd /tmp/before && npm ci && npm run build)
//   node bench/compare.js --build before=/tmp/before/dist --build now=dist [--haproxy] [--connect] [-c 8] [--seconds 10] [--rounds 3]
//
// --tls: the builds terminate their clients' TLS (`tls.mode: terminate`, the certificate of
// bench/lib/perf-tls.js, plain text to the server) and pgbench runs with PGSSLMODE=require.
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const { writeFileSync, mkdtempSync, rmSync } = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');
const { PgCluster } = require('../dist/harness/cluster');
const { findPgBinDir } = require('../dist/harness/binaries');
const { freePort } = require('../dist/harness/ports');
const { cpuSeconds } = require('./lib/perf-proc');
const { makeCertificate } = require('./lib/perf-tls');

const { values: opts } = parseArgs({
  options: {
    build: { type: 'string', multiple: true },
    haproxy: { type: 'boolean' },
    connect: { type: 'boolean' },
    tls: { type: 'boolean' },
    clients: { type: 'string', short: 'c' },
    seconds: { type: 'string' },
    rounds: { type: 'string' },
  },
});
const builds = (opts.build ?? ['now=dist']).map((b) => {
  const [name, dir] = b.split('=');
  return { name, cli: path.resolve(dir, 'cli.js') };
});
const clients = opts.clients ?? '8';
const seconds = Number(opts.seconds ?? 10);
const rounds = Number(opts.rounds ?? 3);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function startTarget(t, dir, pgPort, cert) {
  const port = await freePort();
  if (t.name === 'haproxy') {
    const cfg = path.join(dir, 'haproxy.cfg');
    writeFileSync(cfg, `global\n  maxconn 4000\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 1h\n  timeout server 1h\nlisten pg\n  bind 127.0.0.1:${port}\n  server pg1 127.0.0.1:${pgPort}\n`);
    return { port, proc: spawn('haproxy', ['-db', '-f', cfg], { stdio: 'ignore' }) };
  }
  const cfg = path.join(dir, `${t.name}.yaml`);
  writeFileSync(cfg, `listeners:\n  - { name: rw, bind: "127.0.0.1:${port}", route: primary }\nbackends:\n  - { name: pg1, host: 127.0.0.1, port: ${pgPort} }\nhealth:\n  user: postgres\nlogging:\n  level: warn\n` +
      (cert ? `tls:\n  mode: terminate\n  cert_file: ${cert.certFile}\n  key_file: ${cert.keyFile}\n  server: disable\n` : ''));
  return { port, proc: spawn(process.execPath, [t.cli, '--config', cfg], { stdio: 'inherit' }) };
}

(async () => {
  const bin = findPgBinDir();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgw-compare-'));
  const cluster = await PgCluster.create({ replicas: 0 });
  const targets = [...builds, ...(opts.haproxy ? [{ name: 'haproxy' }] : [])];
  const results = new Map(targets.map((t) => [t.name, []]));
  if (opts.tls && opts.haproxy) throw new Error('--tls: HAProxy in mode tcp cannot answer an SSLRequest');
  const cert = opts.tls ? makeCertificate(dir) : undefined;
  if (cert?.missing) throw new Error(cert.missing);
  const env = opts.tls ? { ...process.env, PGSSLMODE: 'require' } : process.env;
  try {
    const pg = ['-h', '127.0.0.1', '-U', 'postgres'];
    execFileSync(path.join(bin, 'pgbench'), ['-i', '-q', '-s', '10', ...pg, '-p', String(cluster.primary.port), 'postgres'], { stdio: 'ignore' });
    for (let round = 1; round <= rounds; round++) {
      for (const t of round % 2 ? targets : [...targets].reverse()) {
        const { port, proc } = await startTarget(t, dir, cluster.primary.port, cert);
        const exited = new Promise((r) => proc.once('exit', r));
        await sleep(1500);
        try {
          const c0 = cpuSeconds(proc.pid);
          const out = execFileSync(
            path.join(bin, 'pgbench'),
            ['-n', '-S', ...(opts.connect ? ['-C'] : []), '-c', clients, '-j', '2', '-T', String(seconds), ...pg, '-p', String(port), 'postgres'],
            { encoding: 'utf8', env },
          );
          const cpu = cpuSeconds(proc.pid) - c0;
          const tps = Number(/tps = ([\d.]+)/.exec(out)[1]);
          const usPerTxn = (cpu * 1e6) / (tps * seconds);
          results.get(t.name).push({ tps, usPerTxn });
          console.log(`round ${round} ${t.name.padEnd(10)} ${tps.toFixed(0).padStart(7)} tps  ${usPerTxn.toFixed(1).padStart(7)} µs CPU/txn  (load ${os.loadavg()[0].toFixed(2)})`);
        } finally {
          // A failed pgbench must not leave the target running.
          if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
          await exited;
        }
      }
    }
  } finally {
    await cluster.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const range = (xs) => `${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)}`;
  console.log(`\nselect-only${opts.connect ? ' -C' : ''} -c ${clients}${opts.tls ? ' PGSSLMODE=require' : ''}, ${seconds} s × ${rounds} rounds (median, min–max):`);
  for (const [name, rs] of results) {
    const tps = rs.map((r) => r.tps);
    const us = rs.map((r) => r.usPerTxn);
    console.log(`  ${name.padEnd(10)} ${median(tps).toFixed(0).padStart(7)} tps (${range(tps)})  ${median(us).toFixed(1).padStart(7)} µs CPU/txn (${range(us)})`);
  }
})();
