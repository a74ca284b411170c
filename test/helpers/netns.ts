// A PostgreSQL server behind a link the test can cut silently: a network namespace made for the
// test, a veth pair between it and this host, and a private /30 that exists only on that pair.
// Cutting is an iptables DROP inside the namespace (no FIN, no RST, no ICMP: the server just
// goes quiet, like a powered-off host or a firewall that drops), or, without iptables, taking
// the inner end of the pair down. Root only; everything is removed in t.teardown and, should the
// test process die first, by a synchronous 'exit' handler.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { findPgBinDir } from '../../src/harness/binaries';
import { childPids, isRoot, POSTGRES_OS_USER, postgresUserIds, processAlive, readPostmasterPid } from '../../src/harness/run';

export interface NamespacedPostgres {
  /** The server's address inside the namespace, reachable from this host over the veth pair. */
  readonly host: string;
  readonly port: number;
  readonly namespace: string;
  readonly dataDir: string;
  /** How cut() silences the link: 'iptables' (DROP inside the namespace) or 'link-down'. */
  readonly cutMethod: 'iptables' | 'link-down';
  /** Silently drop everything that reaches the server from now on. */
  cut(): Promise<void>;
  /** The postmaster's log so far (for failure messages). */
  log(): string;
}

const PG_PORT = 5432; // the namespace has its own port space: no collision with anything on the host
const COMMAND_TIMEOUT_MS = 60_000;

/** Why namespaced tests cannot run here, or undefined when they can. */
export function netnsUnavailableReason(): string | undefined {
  if (!isRoot()) return 'needs root (network namespaces and veth pairs)';
  if (spawnSync('ip', ['-V'], { stdio: 'ignore' }).status !== 0) return 'the `ip` command (iproute2) is not installed';
  const probe = `pgw-chk-${randomBytes(3).toString('hex')}`;
  const added = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (added.status !== 0) return `cannot create a network namespace: ${String(added.stderr).trim()}`;
  spawnSync('ip', ['netns', 'del', probe], { stdio: 'ignore' });
  return undefined;
}

/**
 * initdb + pg_ctl start of a standalone server inside a fresh namespace, with `trust` for
 * connections from this host's end of the pair. The server listens only on the namespace address.
 */
export async function startNamespacedPostgres(t: Test): Promise<NamespacedPostgres> {
  const id = randomBytes(3).toString('hex');
  const namespace = `pgw-${id}`;
  const outer = `pgw${id}a`; // interface names: at most 15 characters
  const inner = `pgw${id}b`;
  const { hostAddr, nsAddr, subnet } = pickSubnet();
  const binDir = findPgBinDir();
  const baseDir = mkdtempSync(join(tmpdir(), 'pgwarden-netns-'));
  const dataDir = join(baseDir, 'data');
  const logFile = join(baseDir, 'postgres.log');

  let cleaned = false;
  const cleanup = (): void => {
    if (cleaned) return;
    cleaned = true;
    process.off('exit', cleanup);
    // SIGKILL, not pg_ctl: the server may sit behind a cut link, and nothing here needs it tidy.
    const pid = readPostmasterPid(dataDir);
    if (pid !== undefined && processAlive(pid)) {
      const children = childPids(pid);
      killQuietly(pid);
      for (const c of children) killQuietly(c);
    }
    // Deleting the namespace destroys its end of the pair, and with it the pair; the explicit
    // delete covers a namespace that was never made or a pair that never moved into it.
    spawnSync('ip', ['netns', 'del', namespace], { stdio: 'ignore' });
    spawnSync('ip', ['link', 'del', outer], { stdio: 'ignore' });
    rmSync(baseDir, { recursive: true, force: true });
  };
  process.on('exit', cleanup);
  t.teardown(cleanup);

  await run('ip', ['netns', 'add', namespace]);
  await run('ip', ['link', 'add', outer, 'type', 'veth', 'peer', 'name', inner]);
  await run('ip', ['link', 'set', inner, 'netns', namespace]);
  await run('ip', ['addr', 'add', `${hostAddr}/30`, 'dev', outer]);
  await run('ip', ['link', 'set', outer, 'up']);
  await run('ip', ['netns', 'exec', namespace, 'ip', 'addr', 'add', `${nsAddr}/30`, 'dev', inner]);
  await run('ip', ['netns', 'exec', namespace, 'ip', 'link', 'set', inner, 'up']);
  await run('ip', ['netns', 'exec', namespace, 'ip', 'link', 'set', 'lo', 'up']);

  const { uid, gid } = postgresUserIds();
  chownSync(baseDir, uid, gid);
  await run('runuser', ['-u', POSTGRES_OS_USER, '--', join(binDir, 'initdb'), '-D', dataDir, '--no-sync', '--auth=trust', '-U', 'postgres', '--no-instructions', '--encoding=UTF8', '--locale=C']);
  writeFileSync(join(dataDir, 'pg_hba.conf'), `local all all trust\nhost all all ${subnet} trust\n`);
  const conf =
    `listen_addresses = '${nsAddr}'\nport = ${PG_PORT}\nunix_socket_directories = '${dataDir}'\n` +
    `fsync = off\nshared_buffers = 16MB\nlogging_collector = off\ncluster_name = 'netns-${id}'\n`;
  writeFileSync(join(dataDir, 'postgresql.conf'), readFileSync(join(dataDir, 'postgresql.conf'), 'utf8') + conf);
  chownSync(join(dataDir, 'pg_hba.conf'), uid, gid);
  chownSync(join(dataDir, 'postgresql.conf'), uid, gid);
  await run('ip', ['netns', 'exec', namespace, 'runuser', '-u', POSTGRES_OS_USER, '--', join(binDir, 'pg_ctl'), 'start', '-D', dataDir, '-l', logFile, '-w', '-t', '60']);

  const hasIptables = spawnSync('ip', ['netns', 'exec', namespace, 'iptables', '-S'], { stdio: 'ignore' }).status === 0;
  const cutMethod = hasIptables ? 'iptables' : 'link-down';
  return {
    host: nsAddr,
    port: PG_PORT,
    namespace,
    dataDir,
    cutMethod,
    cut: () =>
      hasIptables
        ? run('ip', ['netns', 'exec', namespace, 'iptables', '-A', 'INPUT', '-i', inner, '-j', 'DROP'])
        : run('ip', ['netns', 'exec', namespace, 'ip', 'link', 'set', inner, 'down']),
    log: () => {
      try {
        return readFileSync(logFile, 'utf8');
      } catch {
        return '';
      }
    },
  };
}

/**
 * A /30 in 169.254.0.0/16 (link-local: never routed off a link) that no interface here uses.
 * 169.254.169.0/24 is skipped: cloud metadata services live at 169.254.169.254.
 */
function pickSubnet(): { hostAddr: string; nsAddr: string; subnet: string } {
  const used = spawnSync('ip', ['-o', '-4', 'addr', 'show'], { encoding: 'utf8' }).stdout ?? '';
  for (let attempt = 0; attempt < 50; attempt++) {
    let third = randomInt(1, 255);
    if (third === 169) third = 170;
    const base = randomInt(0, 64) * 4;
    const prefix = `169.254.${third}.`;
    if (used.includes(prefix)) continue;
    return { hostAddr: `${prefix}${base + 1}`, nsAddr: `${prefix}${base + 2}`, subnet: `${prefix}${base}/30` };
  }
  throw new Error('no free 169.254.x.y/30 for the test link');
}

function run(command: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (output += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (output += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), COMMAND_TIMEOUT_MS);
    timer.unref();
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${[command, ...args].join(' ')}: ${err.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${[command, ...args].join(' ')} failed (${code ?? signal}): ${output.trim().slice(-2000)}`));
    });
  });
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}
