// Tearing down one PostgreSQL server the harness started, whoever manages it (our cluster or
// Patroni): pg_ctl stop -m immediate, SIGKILL of the postmaster if pg_ctl could not stop it, and
// the crashed server's leftovers (shared memory, semaphores) released so a later run is clean.
import { killQuietly, postmasterRunning, processAlive, readPostmasterPid, releaseCrashedServerState, runPg, runPgSync } from './run';

function killLeftover(dataDir: string): void {
  const pid = readPostmasterPid(dataDir);
  if (pid !== undefined && processAlive(pid)) killQuietly(pid);
}

/** For destroy(): stops the server (if running) within timeoutS, however it goes. */
export async function stopServerNow(pgCtl: string, dataDir: string, cwd: string, timeoutS: number): Promise<void> {
  if (postmasterRunning(dataDir)) {
    try {
      await runPg(pgCtl, ['stop', '-D', dataDir, '-m', 'immediate', '-w', '-t', String(timeoutS)], { cwd });
    } catch {
      killLeftover(dataDir);
    }
  }
  releaseCrashedServerState(dataDir);
}

/** For the process 'exit' handler, where nothing asynchronous runs any more. */
export function stopServerSync(pgCtl: string, dataDir: string): void {
  if (postmasterRunning(dataDir)) {
    runPgSync(pgCtl, ['stop', '-D', dataDir, '-m', 'immediate', '-w', '-t', '10']);
    killLeftover(dataDir);
  }
  releaseCrashedServerState(dataDir);
}
