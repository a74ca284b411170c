#!/usr/bin/env node
// bench/auth-connect: the cost of authentication at the proxy (issue 19, point 4): new
// connections per second for a SCRAM-SHA-256 user (pgbench -S -C: one connection per
// transaction), straight to PostgreSQL, through pgwarden with auth.mode passthrough (the server
// runs SCRAM with the client) and with auth.mode proxy (pgwarden runs SCRAM with the client,
// then logs in to the server with the recovered ClientKey), interleaved round by round, with
// pgwarden's CPU per connection. Both pgwarden processes run at once against one primary.
//
//   npm run build && flock /tmp/bench.lock node bench/auth-connect.js [--seconds 15] [--rounds 3] [--clients 8] [--no-readme]
'use strict';
const { execFile } = require('node:child_process');
const { mkdtempSync, rmSync, writeFileSync } = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseArgs, promisify } = require('node:util');
const { PgCluster } = require('../dist/harness/cluster');
const { authFunctionSql, passwordHba } = require('../dist/harness/proxy-auth-setup');
const { findPgBinDir } = require('../dist/harness/binaries');
const { Client } = require('pg');
const { startPgwarden } = require('./lib/perf-targets');
const { cpuMeter } = require('./lib/perf-proc');
const { replaceReadmeSection, machineInfo } = require('./lib/failover-report');

const run = promisify(execFile);
const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '15' },
    rounds: { type: 'string', default: '3' },
    clients: { type: 'string', default: '8' },
    refusals: { type: 'string', default: '200' },
    'no-readme': { type: 'boolean', default: false },
  },
});
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);
const CLIENTS = Number(values.clients);
const REFUSALS = Number(values.refusals);
const USER = 'bench_scram';
const PASSWORD = 'bench-scram-pw';
const AUTH_PASSWORD = 'bench-auth-pw';
const pgbench = path.join(findPgBinDir(), 'pgbench');

async function connRate(port) {
  const args = ['-n', '-S', '-C', '-c', String(CLIENTS), '-j', '2', '-T', String(SECONDS), '-h', '127.0.0.1', '-p', String(port), '-U', USER, 'postgres'];
  const { stdout } = await run(pgbench, args, { env: { ...process.env, PGPASSWORD: PASSWORD, PGSSLMODE: 'disable' }, maxBuffer: 16 << 20, timeout: (SECONDS + 120) * 1000 });
  const tps = /tps = ([\d.]+)/.exec(stdout);
  if (!tps) throw new Error(`pgbench printed no tps:\n${stdout}`);
  return { rate: Number(tps[1]), failed: Number(/number of failed transactions: (\d+)/.exec(stdout)?.[1] ?? 0) };
}

async function main() {
  const loadBefore = os.loadavg()[0];
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgwarden-auth-bench-'));
  const cluster = await PgCluster.create({ replicas: 0 });
  const targets = [];
  try {
    const primary = cluster.primary;
    for (const sql of [
      ...authFunctionSql(AUTH_PASSWORD),
      `CREATE ROLE ${USER} LOGIN PASSWORD '${PASSWORD}'`,
    ]) {
      await cluster.query(primary, sql);
    }
    writeFileSync(path.join(primary.dataDir, 'pg_hba.conf'), passwordHba(undefined, { [USER]: 'scram-sha-256' }));
    await cluster.query(primary, 'SELECT pg_reload_conf()');
    await run(pgbench, ['-i', '-q', '-s', '1', '-h', '127.0.0.1', '-p', String(primary.port), '-U', 'postgres', 'postgres'], { env: { ...process.env, PGSSLMODE: 'disable' } });
    await cluster.query(primary, `GRANT SELECT ON pgbench_accounts, pgbench_branches TO ${USER}`);
    process.env.BENCH_AUTH_PASSWORD = AUTH_PASSWORD;
    const backends = [{ name: 'pg1', port: primary.port }];
    targets.push({ name: 'direct', port: primary.port });
    targets.push({ ...(await startPgwarden(dir, backends, { file: 'passthrough.yaml' })), name: 'pgwarden passthrough' });
    targets.push({
      ...(await startPgwarden(dir, backends, { file: 'proxy.yaml', extra: 'auth:\n  mode: proxy\n  user: pgwarden_auth\n  password_env: BENCH_AUTH_PASSWORD\n' })),
      name: 'pgwarden auth.mode proxy',
    });
    const results = new Map(targets.map((t) => [t.name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? targets : [...targets].reverse();
      for (const t of order) {
        const meter = t.server ? cpuMeter(t.server.pid) : undefined;
        const r = await connRate(t.port);
        const cpu = meter?.stop();
        const msPerConn = cpu ? (cpu.cpuSeconds * 1000) / (r.rate * cpu.wallSeconds) : undefined;
        results.get(t.name).push({ ...r, msPerConn });
        console.log(`round ${round + 1} ${t.name}: ${r.rate.toFixed(1)} connections/s, ${r.failed} failed${msPerConn === undefined ? '' : `, pgwarden ${msPerConn.toFixed(2)} ms CPU per connection`}`);
      }
    }
    const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    // Refusals through auth.mode proxy: a known user with a wrong password against an unknown
    // user, interleaved one by one; the time from connect to the 28P01 (node-postgres client).
    const proxyPort = targets[2].port;
    const refusal = { known: [], unknown: [] };
    for (let i = 0; i < REFUSALS; i++) {
      for (const [kind, user] of i % 2 === 0 ? [['known', USER], ['unknown', 'no_such_user']] : [['unknown', 'no_such_user'], ['known', USER]]) {
        const c = new Client({ host: '127.0.0.1', port: proxyPort, user, password: 'wrong-password', database: 'postgres' });
        c.on('error', () => undefined);
        const t0 = process.hrtime.bigint();
        const code = await c.connect().then(() => 'connected', (e) => e.code);
        refusal[kind].push(Number(process.hrtime.bigint() - t0) / 1e6);
        if (code !== '28P01') throw new Error(`${kind} user: expected 28P01, got ${code}`);
      }
    }
    const q = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
    const refusalRows = ['known', 'unknown'].map((k) => `| ${k === 'known' ? 'known user, wrong password' : 'unknown user'} | ${REFUSALS} | ${q(refusal[k], 0.5).toFixed(2)} | ${q(refusal[k], 0.1).toFixed(2)} | ${q(refusal[k], 0.9).toFixed(2)} |`);
    console.log(refusalRows.join('\n'));
    const direct = median(results.get('direct').map((r) => r.rate));
    const rows = targets.map((t) => {
      const rs = results.get(t.name);
      const rates = rs.map((r) => r.rate);
      const cpu = rs.map((r) => r.msPerConn).filter((x) => x !== undefined);
      return `| ${t.name} | ${median(rates).toFixed(0)} | ${Math.min(...rates).toFixed(0)}–${Math.max(...rates).toFixed(0)} | ${(median(rates) / direct).toFixed(2)}× | ${cpu.length ? median(cpu).toFixed(2) : '—'} | ${rs.reduce((a, r) => a + r.failed, 0)} |`;
    });
    const section = [
      '## Authentication at the proxy',
      '',
      `Load average (1 min) at the start: ${loadBefore.toFixed(2)}, at the end: ${os.loadavg()[0].toFixed(2)} (${os.cpus().length} vCPU shared with pgbench and PostgreSQL).` +
        (loadBefore > 2 ? ' **The machine was busy with other work: the rates are noise; read the CPU per connection and the refusal times side by side only.**' : ''),
      '',
      `\`node bench/auth-connect.js\` (${new Date().toISOString().slice(0, 16)} UTC, ${os.cpus().length} vCPU, ${machineInfo().postgres ?? ''}): new connections per second of a`,
      `SCRAM-SHA-256 user, \`pgbench -n -S -C -c ${CLIENTS} -j 2 -T ${SECONDS}\` (one connection per transaction), ${ROUNDS} interleaved`,
      'rounds, median and range; pgwarden\'s CPU per connection from /proc. PostgreSQL\'s `pg_hba.conf` asks the user for',
      'scram-sha-256 in every case: passthrough relays the server\'s SCRAM exchange; proxy runs SCRAM with the client',
      'itself, then logs in to the server with the recovered ClientKey (two SCRAM exchanges per connection, the PBKDF2',
      'work stays with the client). auth.query answers are cached 5 s, so nearly every connection is served from the cache.',
      '',
      '| target | connections/s | range | vs direct | pgwarden ms CPU / connection | failed |',
      '|---|--:|--:|--:|--:|--:|',
      ...rows,
      '',
      `Time to the refusal through auth.mode proxy (node-postgres, \`connect()\` to its 28P01, ${REFUSALS} of each, interleaved;`,
      'the client\'s own PBKDF2 is inside the time, the same for both): an unknown user goes through a whole SCRAM exchange',
      'with a made-up salt, so the two should not differ by more than the noise.',
      '',
      '| refused login | tries | median ms | p10 ms | p90 ms |',
      '|---|--:|--:|--:|--:|',
      ...refusalRows,
      '',
    ].join('\n');
    console.log(`\n${section}`);
    if (!values['no-readme']) replaceReadmeSection(path.join(__dirname, 'README.md'), '## Authentication at the proxy', section);
  } finally {
    for (const t of targets) await t.server?.stop();
    await cluster.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
