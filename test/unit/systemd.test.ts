// config/systemd/pgwarden.service: parses as an INI-style unit, has the keys the README promises,
// agrees with the CLI and the config defaults, and (when systemd-analyze is installed) passes
// `systemd-analyze verify` without a warning about it.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadConfigFile } from '../../src/config/load';

const REPO = join(__dirname, '..', '..');
const UNIT = join(REPO, 'config', 'systemd', 'pgwarden.service');

/** Section → key → values (a key may repeat). Comments (# ;) and blank lines skipped, `\` joins. */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    const section = /^\[([A-Za-z]+)\]$/.exec(line);
    if (section) {
      if (sections.has(section[1])) throw new Error(`line ${i + 1}: section [${section[1]}] twice`);
      current = new Map();
      sections.set(section[1], current);
      return;
    }
    const kv = /^([A-Za-z][A-Za-z0-9]*)=(.*)$/.exec(line);
    if (!kv) throw new Error(`line ${i + 1}: not key=value: ${line}`);
    if (!current) throw new Error(`line ${i + 1}: ${kv[1]} outside any section`);
    current.set(kv[1], [...(current.get(kv[1]) ?? []), kv[2]]);
  });
  return sections;
}

const unit = parseUnit(readFileSync(UNIT, 'utf8'));
const service = unit.get('Service') ?? new Map<string, string[]>();
/** The effective (last) value of a [Service] key. */
const get = (key: string) => service.get(key)?.at(-1);

t.test('sections and the required keys', async (t) => {
  t.same([...unit.keys()], ['Unit', 'Service', 'Install']);
  t.equal(get('Type'), 'simple', 'Type=simple: pgwarden does not speak sd_notify');
  t.equal(get('User'), 'pgwarden', 'a dedicated user');
  t.equal(get('Group'), 'pgwarden');
  t.equal(get('ExecReload'), '/bin/kill -HUP $MAINPID', 'reload is SIGHUP');
  t.equal(get('Restart'), 'on-failure');
  t.equal(get('KillSignal'), 'SIGTERM');
  for (const [key, value] of [
    ['NoNewPrivileges', 'yes'],
    ['ProtectSystem', 'strict'],
    ['ProtectHome', 'yes'],
    ['PrivateTmp', 'yes'],
  ]) {
    t.equal(get(key), value, `${key}=${value}`);
  }
  t.notOk(get('MemoryDenyWriteExecute'), 'no MemoryDenyWriteExecute: V8 JIT needs it off');
  t.notOk(get('AmbientCapabilities'), 'no capabilities for the default (unprivileged) ports');
  t.equal(unit.get('Install')?.get('WantedBy')?.[0], 'multi-user.target');
});

t.test('ExecStart runs the CLI the way src/cli.ts takes its config, and SIGHUP is handled', async (t) => {
  const cli = readFileSync(join(REPO, 'src', 'cli.ts'), 'utf8');
  const exec = get('ExecStart')!.split(/\s+/);
  t.match(exec[0], /^\/usr\/bin\/node$/);
  t.match(exec[1], /\/dist\/cli\.js$/);
  t.same(exec.slice(2), ['--config', '/etc/pgwarden/pgwarden.yaml'], 'run mode is `--config FILE` and nothing else');
  t.match(cli, /config: \{ type: 'string'/, 'the CLI has --config');
  t.match(cli, /process\.on\('SIGHUP'/, 'the CLI reloads on SIGHUP');
  t.same(get('ExecStartPre')!.split(/\s+/), [...exec.slice(0, 2), 'check', ...exec.slice(2)], 'ExecStartPre checks the same file first');
  // The arguments as written work: `check` with them on the example config exits 0.
  const r = spawnSync(process.execPath, [join(REPO, 'dist', 'cli.js'), 'check', '--config', join(REPO, 'config', 'example.yaml')], {
    env: { PATH: process.env.PATH, PGWARDEN_CHECK_PASSWORD: 'secret' },
    encoding: 'utf8',
  });
  t.equal(r.status, 0, `check on the example config (stderr: ${r.stderr})`);
});

t.test('TimeoutStopSec outlasts proxy.shutdown_timeout; LimitNOFILE covers the example max_connections', async (t) => {
  const config = loadConfigFile(join(REPO, 'config', 'example.yaml'), { PGWARDEN_CHECK_PASSWORD: 'x' });
  const stop = /^(\d+)s$/.exec(get('TimeoutStopSec') ?? '');
  t.ok(stop, 'TimeoutStopSec in seconds');
  t.ok(Number(stop?.[1]) * 1000 > config.proxy.shutdownTimeout, `TimeoutStopSec ${get('TimeoutStopSec')} > shutdown_timeout ${config.proxy.shutdownTimeout} ms`);
  const sessions = config.listeners.reduce((n, l) => n + l.maxConnections, 0);
  const needed = 2 * sessions + 2 * config.backends.length + 100;
  t.ok(Number(get('LimitNOFILE')) >= needed, `LimitNOFILE ${get('LimitNOFILE')} ≥ 2 × ${sessions} sessions + checks + slack (${needed})`);
});

t.test('the backup hook can write its BACKUP_DIR under ProtectSystem=strict', async (t) => {
  const config = loadConfigFile(join(REPO, 'config', 'example.yaml'), { PGWARDEN_CHECK_PASSWORD: 'x' });
  const writable = (service.get('ReadWritePaths') ?? []).flatMap((v) => v.split(/\s+/)).map((p) => p.replace(/^-/, ''));
  for (const hooks of Object.values(config.hooks)) {
    for (const h of hooks ?? []) {
      const dir = h.env?.BACKUP_DIR;
      if (dir) t.ok(writable.some((w) => dir === w || dir.startsWith(`${w}/`)), `BACKUP_DIR ${dir} is in ReadWritePaths (${writable.join(' ')})`);
    }
  }
});

const noAnalyze = spawnSync('systemd-analyze', ['--version']).error ? 'systemd-analyze is not installed (Debian package systemd)' : false;
if (noAnalyze) console.log(`# skipping systemd-analyze verify: ${noAnalyze}`);

t.test('systemd-analyze verify', { skip: noAnalyze }, async (t) => {
  // verify names the unit after its file; it warns (exit 0) about unknown keys and bad values,
  // so any line that mentions the unit is a failure.
  const dir = mkdtempSync(join(tmpdir(), 'pgwarden-unit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const copy = join(dir, 'pgwarden.service');
  copyFileSync(UNIT, copy);
  const r = spawnSync('systemd-analyze', ['verify', copy], { cwd: dir, encoding: 'utf8' });
  const about = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.includes('pgwarden.service'));
  t.equal(r.status, 0, `exit 0 (${r.stderr})`);
  t.same(about, [], 'no warning about the unit');
});
