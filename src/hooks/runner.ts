// Runs the operator's hook commands on events (a backup after a switchover, a notification when
// a backend goes down, a veto before a planned switchover).
//
// Why it looks the way it does:
// - argv, no shell: a backend name or host never becomes shell syntax;
// - each run is its own process group (detached), so a timeout or close() kills the script AND
//   everything it started (pg_basebackup, sleep, curl), not just the shell at the top;
// - runs of one event are chained: two post_switchover backups in a row never write the same
//   backup directory at once; different events stay independent;
// - nothing here throws or rejects: a broken hook is a log line and an outcome, never a crash.
//   Callers on the routing path do not await run(); only preSwitchover is awaited (it can veto).
import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
import type { HookConfig, HookEvent, HooksConfig } from '../config/types';
import type { Bus } from '../events';
import { hookEnvironment, type Endpoint, type HookContext } from './env';
import { MAX_OUTPUT_LINE_CHARS, MAX_OUTPUT_PER_RUN_CHARS, OutputCapture, type Stream } from './output';

export type { Endpoint, HookContext };

export interface HookOutcome {
  command: string[];
  /** ok: exit 0 · failed: other exit code or a signal · timeout: killed at its timeout · error: never ran. */
  outcome: 'ok' | 'failed' | 'timeout' | 'error';
  exitCode?: number;
  signal?: string;
  durationMs: number;
  /** Why the hook could not run or was stopped (outcome 'error'), e.g. "spawn /x ENOENT". */
  error?: string;
  /** The end of its stderr (at most 1 kB), for veto reasons and the timeline. */
  stderrTail?: string;
}

export interface HookRunnerOptions {
  log: Logger;
  bus?: Bus;
  /** Working directory of every hook; default: pgwarden's own. */
  cwd?: string;
  /** Between SIGTERM and SIGKILL of a hook's process group at its timeout or close(). */
  killGraceMs?: number;
}

const DEFAULT_KILL_GRACE_MS = 2000;
// After a hook's main process exits, a background child it left behind may still hold the
// output pipes open; the run is over anyway once this much more time has passed.
const OUTPUT_DRAIN_AFTER_EXIT_MS = 1000;

export class HookRunner {
  readonly #hooks: HooksConfig;
  readonly #log: Logger;
  readonly #bus?: Bus;
  readonly #cwd?: string;
  readonly #killGraceMs: number;
  // Per event, the promise of its latest run: the next run of that event starts after it.
  readonly #chains = new Map<HookEvent, Promise<void>>();
  readonly #running = new Set<RunningHook>();
  #closed = false;

  constructor(hooks: HooksConfig, opts: HookRunnerOptions) {
    this.#hooks = hooks;
    this.#log = opts.log;
    this.#bus = opts.bus;
    this.#cwd = opts.cwd;
    this.#killGraceMs = opts.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
  }

  /** Runs every hook of `event` in list order, after any earlier run of the same event. Never rejects. */
  run(event: HookEvent, ctx: HookContext = {}): Promise<HookOutcome[]> {
    const previous = this.#chains.get(event) ?? Promise.resolve();
    const current = previous.then(() => this.#runEvent(event, ctx));
    const settled = current.then(
      () => undefined,
      () => undefined,
    );
    this.#chains.set(event, settled);
    void settled.then(() => {
      if (this.#chains.get(event) === settled) this.#chains.delete(event);
    });
    return current;
  }

  /**
   * Runs the pre_switchover hooks; the switchover may go ahead only if every one exits 0. The
   * first one that fails, times out or cannot start vetoes it, and the rest are not run.
   */
  async preSwitchover(ctx: HookContext): Promise<{ allowed: boolean; reason?: string }> {
    const outcomes = await this.run('pre_switchover', ctx);
    const veto = outcomes.find((o) => o.outcome !== 'ok');
    if (veto === undefined) return { allowed: true };
    const tail = veto.stderrTail?.trim();
    return { allowed: false, reason: `${describeOutcome('pre_switchover', veto)}${tail ? `: ${tail}` : ''}` };
  }

  /** Kills the process groups of running hooks and resolves when they are gone; later runs do nothing. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const running of this.#running) running.stop();
    await Promise.all([...this.#chains.values()]);
  }

  async #runEvent(event: HookEvent, ctx: HookContext): Promise<HookOutcome[]> {
    const outcomes: HookOutcome[] = [];
    try {
      for (const hook of this.#hooks[event] ?? []) {
        const outcome = await this.#runHook(event, hook, ctx);
        outcomes.push(outcome);
        this.#report(event, hook, ctx, outcome);
        // A veto is final; later pre_switchover checks cannot change the answer.
        if (event === 'pre_switchover' && outcome.outcome !== 'ok') break;
      }
    } catch (err) {
      // Only a bug gets here (a throwing logger or bus listener); it must not become an
      // unhandled rejection in a caller that did not await.
      this.#log.error({ event: 'hook.bug', hook: event, err }, `hook runner failed while running ${event} hooks`);
    }
    return outcomes;
  }

  async #runHook(event: HookEvent, hook: HookConfig, ctx: HookContext): Promise<HookOutcome> {
    const command = [...hook.command];
    if (this.#closed) return { command, outcome: 'error', error: 'not run: the hook runner is closed', durationMs: 0 };
    const program = command[0] ?? '(empty command)';
    const running = startHook({
      command,
      env: hookEnvironment(event, ctx, hook.env),
      cwd: this.#cwd ?? process.cwd(),
      timeoutMs: hook.timeout,
      killGraceMs: this.#killGraceMs,
      onLine: (stream, line) => {
        const fields = { event: 'hook.output', hook: event, command: program, stream, line };
        if (stream === 'stdout') this.#log.info(fields, 'hook output');
        else this.#log.warn(fields, 'hook output');
      },
    });
    this.#running.add(running);
    const { outcome, dropped } = await running.done;
    this.#running.delete(running);
    if (dropped.lines > 0 || dropped.chars > 0) {
      this.#log.warn(
        { event: 'hook.output_dropped', hook: event, command: program, droppedLines: dropped.lines, droppedChars: dropped.chars },
        `hook output over the limits (${MAX_OUTPUT_LINE_CHARS} characters a line, ${MAX_OUTPUT_PER_RUN_CHARS} a run) was not logged`,
      );
    }
    return outcome;
  }

  #report(event: HookEvent, hook: HookConfig, ctx: HookContext, o: HookOutcome): void {
    const level = o.outcome === 'ok' ? 'info' : o.outcome === 'error' ? 'error' : 'warn';
    const message = describeOutcome(event, o, hook.timeout);
    this.#log[level](
      { event: 'hook.run', hook: event, command: o.command, outcome: o.outcome, exitCode: o.exitCode, signal: o.signal, durationMs: o.durationMs, error: o.error },
      message,
    );
    if (this.#bus === undefined) return;
    const program = o.command[0] ?? '';
    this.#bus.emit('hook.run', { event, command: program, outcome: o.outcome, durationMs: o.durationMs, exitCode: o.exitCode });
    const backend = (ctx.newPrimary ?? ctx.backend ?? ctx.oldPrimary)?.name;
    this.#bus.emit('timeline', { time: new Date().toISOString(), event: 'hook.run', level, message, ...(backend ? { backend } : {}) });
  }
}

/** One sentence for logs, the timeline and veto reasons. */
export function describeOutcome(event: HookEvent, o: HookOutcome, timeoutMs?: number): string {
  const what = `${event} hook ${o.command[0] ?? '(empty command)'}`;
  switch (o.outcome) {
    case 'ok':
      return `${what} succeeded in ${o.durationMs} ms`;
    case 'failed':
      return `${what} failed: ${o.exitCode !== undefined ? `exit code ${o.exitCode}` : `killed by ${o.signal}`} after ${o.durationMs} ms`;
    case 'timeout':
      return `${what} timed out${timeoutMs !== undefined ? ` after ${timeoutMs} ms` : ''}; its process group was killed`;
    case 'error':
      return `${what} could not run: ${o.error ?? 'unknown error'}`;
  }
}

// ---- One run of one command ------------------------------------------------------------------

interface RunningHook {
  readonly done: Promise<{ outcome: HookOutcome; dropped: { lines: number; chars: number } }>;
  /** SIGTERM to the process group, SIGKILL after the grace; the outcome becomes 'error'. */
  stop(): void;
}

interface StartSpec {
  command: string[];
  env: Record<string, string>;
  cwd: string;
  timeoutMs: number;
  killGraceMs: number;
  onLine: (stream: Stream, line: string) => void;
}

function startHook(spec: StartSpec): RunningHook {
  const started = performance.now();
  const capture = new OutputCapture(spec.onLine);
  let resolveDone!: (value: Awaited<RunningHook['done']>) => void;
  const done = new Promise<Awaited<RunningHook['done']>>((resolve) => (resolveDone = resolve));
  let child: ChildProcess | undefined;
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let killedBecause: 'timeout' | 'stopped' | undefined;
  let timeoutTimer: NodeJS.Timeout | undefined;
  let killTimer: NodeJS.Timeout | undefined;
  let drainTimer: NodeJS.Timeout | undefined;
  let settled = false;

  const finish = (fields: Omit<HookOutcome, 'command' | 'durationMs'>): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timeoutTimer);
    clearTimeout(killTimer);
    clearTimeout(drainTimer);
    child?.stdout?.destroy();
    child?.stderr?.destroy();
    capture.flush();
    const outcome: HookOutcome = { command: spec.command, durationMs: Math.round(performance.now() - started), ...fields };
    if (capture.stderrTail !== '') outcome.stderrTail = capture.stderrTail;
    resolveDone({ outcome, dropped: capture.dropped });
  };

  const signalGroup = (signal: NodeJS.Signals): void => {
    if (child?.pid === undefined) return;
    try {
      process.kill(-child.pid, signal); // negative pid: the whole process group
    } catch {
      // ESRCH: the group is gone already
    }
  };

  const kill = (why: 'timeout' | 'stopped'): void => {
    if (settled || killedBecause !== undefined) return;
    killedBecause = why;
    clearTimeout(timeoutTimer);
    signalGroup('SIGTERM');
    killTimer = setTimeout(() => signalGroup('SIGKILL'), spec.killGraceMs);
    killTimer.unref();
  };

  // The run is over once the main process has exited and its output pipes closed (or the drain
  // time after its exit has passed).
  const complete = (): void => {
    if (exit === undefined) return;
    const { code, signal } = exit;
    if (killedBecause !== undefined) {
      signalGroup('SIGKILL'); // whatever ignored SIGTERM and closed its output
      if (killedBecause === 'timeout') finish({ outcome: 'timeout', ...exitFields(code, signal) });
      else finish({ outcome: 'error', error: 'stopped: pgwarden is shutting down', ...exitFields(code, signal) });
      return;
    }
    finish({ outcome: code === 0 ? 'ok' : 'failed', ...exitFields(code, signal) });
  };

  if (spec.command.length === 0) {
    finish({ outcome: 'error', error: 'empty command' });
    return { done, stop: () => undefined };
  }
  try {
    child = spawn(spec.command[0]!, spec.command.slice(1), {
      cwd: spec.cwd,
      env: spec.env,
      detached: true, // its own process group, so one kill reaches every process it started
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    finish({ outcome: 'error', error: (err as Error).message });
    return { done, stop: () => undefined };
  }
  child.on('error', (err) => {
    // Without a pid the process never existed (ENOENT, EACCES, a missing cwd). With one, this
    // is a failed kill(), which the group signals above do not use.
    if (child?.pid === undefined) finish({ outcome: 'error', error: err.message });
  });
  child.on('exit', (code, signal) => {
    exit = { code, signal };
    clearTimeout(timeoutTimer);
    drainTimer = setTimeout(complete, OUTPUT_DRAIN_AFTER_EXIT_MS);
    drainTimer.unref();
  });
  child.on('close', complete);
  if (child.stdout) capture.attach(child.stdout, 'stdout');
  if (child.stderr) capture.attach(child.stderr, 'stderr');
  if (Number.isFinite(spec.timeoutMs) && spec.timeoutMs > 0) {
    timeoutTimer = setTimeout(() => kill('timeout'), spec.timeoutMs);
    timeoutTimer.unref();
  }
  return { done, stop: () => kill('stopped') };
}

function exitFields(code: number | null, signal: NodeJS.Signals | null): Pick<HookOutcome, 'exitCode' | 'signal'> {
  return code !== null ? { exitCode: code } : signal !== null ? { signal } : {};
}
