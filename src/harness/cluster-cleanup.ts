// Part of the cluster harness for the demo, tests and benchmarks (see cluster.ts); not the proxy.
// However this process ends, a cluster's servers stop and its files go: a detached watchdog
// shell covers a death without cleanup (SIGKILL), and an 'exit' and signal hook destroys the
// clusters still alive on every other way out. PostgreSQL clusters (cluster.ts) and etcd
// clusters (etcd.ts) both register here.
import { spawn } from 'node:child_process';
import { isRoot } from './run';

// A detached shell that outlives us: if this process dies without running its 'exit' handler
// (SIGKILL, or a signal handled by someone who then re-raises it), it stops the servers and
// removes baseDir within a second. After a normal destroy() it is killed and finds nothing.
// Supervisors we spawned that would restart a stopped server (Patroni, patroni.ts) write their
// pid to <baseDir>/*.pid and are SIGKILLed with their process group first, on the same terms as
// in the pid-file watchdog below.
const WATCHDOG_SCRIPT = `
parent=$1; base=$2; pgctl=$3; asroot=$4; shift 4
while kill -0 "$parent" 2>/dev/null && [ -d "$base" ]; do sleep 1; done
[ -d "$base" ] || exit 0
for f in "$base"/*.pid; do
  pid=$(cat "$f" 2>/dev/null) || continue
  grep -qaF -- "$base" "/proc/$pid/cmdline" 2>/dev/null && kill -9 "-$pid" "$pid"
done >/dev/null 2>&1
for d in "$@"; do
  [ -f "$d/postmaster.pid" ] || continue
  if [ "$asroot" = 1 ]; then runuser -u postgres -- "$pgctl" stop -D "$d" -m immediate -w -t 10
  else "$pgctl" stop -D "$d" -m immediate -w -t 10; fi
done >/dev/null 2>&1
rm -rf "$base"
`;

export function startWatchdog(baseDir: string, pgCtl: string, dataDirs: string[]): number | undefined {
  const child = spawn('sh', ['-c', WATCHDOG_SCRIPT, 'pgwarden-cluster-watchdog', String(process.pid), baseDir, pgCtl, isRoot() ? '1' : '0', ...dataDirs], {
    cwd: '/',
    detached: true, // its own process group: a Ctrl-C aimed at us must not kill it too
    stdio: 'ignore',
  });
  child.on('error', () => {}); // without a shell there is no watchdog; the 'exit' handler remains
  child.unref();
  return child.pid;
}

// The same for servers we spawn ourselves (etcd.ts): each writes its pid to <baseDir>/*.pid.
// They are read when the parent is gone, not passed at start, because a restarted member has a
// new pid. A pid is killed only while its command line still names baseDir: once a member has
// exited, its pid may belong to someone else.
const PID_FILE_WATCHDOG_SCRIPT = `
parent=$1; base=$2
while kill -0 "$parent" 2>/dev/null && [ -d "$base" ]; do sleep 1; done
[ -d "$base" ] || exit 0
for f in "$base"/*.pid; do
  pid=$(cat "$f" 2>/dev/null) || continue
  grep -qaF -- "$base" "/proc/$pid/cmdline" 2>/dev/null && kill -9 "$pid"
done >/dev/null 2>&1
sleep 1
rm -rf "$base"
`;

export function startPidFileWatchdog(baseDir: string): number | undefined {
  const child = spawn('sh', ['-c', PID_FILE_WATCHDOG_SCRIPT, 'pgwarden-pidfile-watchdog', String(process.pid), baseDir], {
    cwd: '/',
    detached: true,
    stdio: 'ignore',
  });
  child.on('error', () => {});
  child.unref();
  return child.pid;
}

// Clusters still alive when the process exits.
const live = new Map<object, () => void>();
let exitHooksInstalled = false;

export function registerLive(cluster: object, destroySync: () => void): void {
  live.set(cluster, destroySync);
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', destroyAllSync);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    // Someone else already handles this signal: they decide how the process ends, and the
    // 'exit' handler (or the watchdog) cleans up then. Listening too would change their logic.
    if (process.listenerCount(signal) > 0) continue;
    const onSignal = (): void => {
      process.removeListener(signal, onSignal);
      // A listener added after ours handles the signal; do not end the process under it.
      if (process.listenerCount(signal) > 0) return;
      destroyAllSync();
      process.kill(process.pid, signal); // default action again: die by this signal, as without us
    };
    process.on(signal, onSignal);
  }
}

export function unregisterLive(cluster: object): void {
  live.delete(cluster);
}

function destroyAllSync(): void {
  for (const destroySync of [...live.values()]) {
    try {
      destroySync();
    } catch {
      // best effort: the next cluster still deserves its cleanup
    }
  }
}
