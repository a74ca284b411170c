// A long-running child of the harness (an etcd member, a Patroni node) started the same way:
// its stdout and stderr appended to its log file, its pid written for the watchdog, never ref'd
// (a test that forgets destroy() must still end; the 'exit' hook kills it), and its end noted
// once — whether it exited, was killed, or could not be started at all.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { closeSync, openSync, writeFileSync } from 'node:fs';

/** What the harness keeps of one supervised process. */
export interface SupervisedState {
  readonly logFile: string;
  readonly pidFile: string;
  child: ChildProcess | undefined; // undefined once the process has exited
  pid: number;
  exited: Promise<void>;
  exitNote: string;
}

/** Starts `command` for `state`; `killedWord` words a death by signal ("killed by", "was killed by"). */
export function spawnSupervised(state: SupervisedState, command: string, args: readonly string[], options: Omit<SpawnOptions, 'stdio'>, killedWord = 'killed by'): void {
  const out = openSync(state.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(command, args, { ...options, stdio: ['ignore', out, out] });
  } finally {
    closeSync(out); // the child has its own copy
  }
  child.unref();
  state.child = child;
  state.pid = child.pid ?? 0;
  state.exitNote = 'running';
  if (child.pid !== undefined) writeFileSync(state.pidFile, `${child.pid}\n`);
  state.exited = new Promise((resolveExit) => {
    const gone = (note: string): void => {
      if (state.child === child) {
        state.child = undefined;
        state.exitNote = note;
      }
      resolveExit();
    };
    child.once('exit', (code, signal) => gone(code === null ? `${killedWord} ${signal}` : `exited with code ${code}`));
    child.once('error', (err) => gone(`could not be started (${err.message})`)); // no 'exit' follows a failed spawn
  });
}
