// `bench/run --quick` proves the benchmark script works end to end: it starts its servers,
// runs every workload against every installed target, and writes a results file of the
// documented shape. No numbers are judged here: timings belong to the benchmark, not the tests.
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';

const RUN = path.join(__dirname, '..', '..', 'bench', 'run');
const TARGETS = ['direct', 'pgwarden', 'haproxy', 'pgbouncer'];
const WORKLOADS = ['select-c8', 'select-c64', 'tpcb-c8', 'tpcb-c64', 'connect-c8'];
const TLS_TARGETS = ['direct', 'pgwarden', 'pgbouncer'];
const TLS_WORKLOADS = ['select-c8', 'select-c64', 'connect-c8'];

t.setTimeout(900_000);

t.test('bench/run --quick exits 0 and writes a results JSON', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgwarden-bench-smoke-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [RUN, '--quick', '--results-dir', dir], { maxBuffer: 32 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
  t.equal(code, 0, `exit code\n--- stdout ---\n${stdout.slice(-4000)}\n--- stderr ---\n${stderr.slice(-4000)}`);

  const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
  t.equal(files.length, 1, 'one results file');
  const result = JSON.parse(readFileSync(path.join(dir, files[0]!), 'utf8'));
  t.equal(result.format, 'pgwarden-bench/1');
  t.equal(result.mode, 'quick');
  t.same(result.errors, []);

  // Every target is either measured or reported missing, never silently absent.
  const measured = TARGETS.filter((name) => result.targets[name] && !result.targets[name].missing);
  const missing = TARGETS.filter((name) => result.targets[name]?.missing);
  t.same([...measured, ...missing].sort(), [...TARGETS].sort(), 'each target measured or reported missing');
  t.same(result.skipped.map((s: { target: string }) => s.target).sort(), [...missing].sort());
  t.ok(measured.includes('direct') && measured.includes('pgwarden'));

  for (const w of WORKLOADS) {
    for (const target of measured) {
      const s = result.summary[w]?.[target];
      t.ok(s, `summary for ${w} / ${target}`);
      if (!s) continue;
      t.type(s.tps, 'number');
      t.type(s.latencyMs, 'number');
      t.type(s.vsDirect, 'number');
      if (target !== 'direct') t.type(s.proxyCpuPercent, 'number', `proxy CPU for ${target}`);
    }
  }
  t.ok(result.throughput.length >= WORKLOADS.length * measured.length, 'one run per workload and target at least');

  for (const proxy of measured.filter((m) => m !== 'direct')) {
    const rows = result.memory.filter((m: { target: string }) => m.target === proxy);
    t.ok(rows.length > 0, `memory rows for ${proxy}`);
    for (const row of rows) {
      t.ok(row.established > 0, `${proxy}: idle sessions established`);
      t.type(row.rss, 'number');
      t.ok(row.anon > 0 && row.anon <= row.rss, `${proxy}: anonymous memory is part of RSS`);
      t.type(row.bytesPerSession, 'number');
    }
  }
  for (const proxy of missing) t.ok(result.memory.every((m: { target: string; skipped?: string }) => m.target !== proxy || m.skipped), `${proxy} memory skipped`);

  // TLS (sslmode=require): to the primary itself, through pgwarden (terminate) and PgBouncer.
  const noCertificate = result.tls.skipped.find((s: { target: string }) => s.target === 'all');
  if (noCertificate) t.comment(`TLS phase skipped: ${noCertificate.reason}`);
  else {
    const tlsMeasured = TLS_TARGETS.filter((name) => measured.includes(name));
    for (const target of tlsMeasured) t.match(result.tls.targets[target]?.protocol, /^TLSv1\.[23]$/, `${target}: a TLS session negotiated`);
    for (const w of TLS_WORKLOADS) {
      for (const target of tlsMeasured) {
        const s = result.tls.summary[w]?.[target];
        t.ok(s, `TLS summary for ${w} / ${target}`);
        if (!s) continue;
        t.type(s.tps, 'number');
        if (target !== 'direct') t.type(s.proxyCpuPercent, 'number', `TLS proxy CPU for ${target}`);
      }
    }
    const verdict = result.tls.target.verdicts['select-c8'];
    if (measured.includes('pgbouncer')) t.type(verdict.ratio, 'number', 'pgwarden against PgBouncer with TLS');
    for (const proxy of ['pgwarden', 'pgbouncer'].filter((p) => measured.includes(p))) {
      const rows = result.memory.filter((m: { target: string; clientTls: boolean }) => m.target === proxy && m.clientTls);
      t.ok(rows.length > 0 && rows.every((m: { established: number }) => m.established > 0), `${proxy}: idle TLS sessions established`);
    }
  }

  t.equal(result.healthCheck.backends, 10);
  t.equal(result.healthCheck.intervalMs, 250);
  t.type(result.healthCheck.cpuPercent, 'number');
  t.type(result.healthCheck.cpuMsPerCheck, 'number');
});
