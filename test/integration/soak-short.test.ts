// `bench/soak.js --short` proves the soak works end to end and holds its verdicts on one pass of
// its faults (kill -9 of the primary with an external promote and a pg_rewind rejoin, SIGSTOP of
// a replica, a switchover through the admin API, a replica flapping, a reload adding and
// removing a backend, drain/ready; each once): pgwarden alive, no acknowledged
// write lost or taken on a stale timeline, and its memory, handles, descriptors and sessions
// back within tolerance after every fault. The soak waits for each condition with deadlines;
// nothing here judges a time.
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';

const SOAK = path.join(__dirname, '..', '..', 'bench', 'soak.js');

t.setTimeout(600_000);

t.test('bench/soak.js --short: every verdict holds', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgwarden-soak-short-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [SOAK, '--short', '--results-dir', dir], { maxBuffer: 32 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
  const output = `--- stdout ---\n${stdout.slice(-6000)}\n--- stderr ---\n${stderr.slice(-4000)}`;
  t.equal(code, 0, code === 0 ? 'exit code 0' : `exit code\n${output}`);

  const json = readdirSync(dir).filter((f) => f.endsWith('.json'));
  t.equal(json.length, 1, 'one results file');
  t.equal(readdirSync(dir).filter((f) => f.endsWith('.svg')).length, 1, 'one plot');
  if (json.length !== 1) return;
  const result = JSON.parse(readFileSync(path.join(dir, json[0]!), 'utf8'));
  for (const [verdict, ok] of Object.entries(result.verdicts)) t.equal(ok, true, `${verdict}\n${ok ? '' : output}`);
  const kinds = new Set(result.faults.map((f: { kind: string }) => f.kind));
  t.same([...kinds].sort(), ['drain-ready', 'flap-replica', 'kill-primary', 'reload', 'sigstop-replica', 'switchover'], 'every fault kind ran');
  t.equal(result.writes.lostCount, 0, 'no acknowledged write lost');
  t.ok(result.writes.acked > 0, 'writes were acknowledged');
  t.equal(result.failovers, 2, 'the primary moved twice (kill -9 and switchover)');
});
