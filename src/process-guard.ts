// What the process does with an error nobody caught — never a silent crash:
// - an unhandled promise rejection is logged at error level (process.unhandled_rejection) and
//   pgwarden keeps serving. The rejected promise's owner is gone: nothing awaited it, so no state
//   was left half-changed waiting on it; the sessions, checkers and topology are intact.
//   (Node's default since v15 would turn it into an uncaught exception and kill every session.)
// - an uncaught exception is logged at fatal level (process.uncaught_exception) and the process
//   exits 1 once the log is flushed. A throw that unwound to the event loop may have left any
//   object halfway through a change; serving on from unknown state could route writes wrongly,
//   so the supervisor (systemd, Kubernetes) restarts pgwarden from a clean start instead.
// Both lines carry the error with its stack (pino's `err` serializer).
import { inspect } from 'node:util';
import type { Logger } from './logger';

export interface ProcessGuardOptions {
  /** How to end the process (tests replace it); default process.exit. */
  exit?: (code: number) => void;
  /** The longest wait for the log to flush before exiting anyway. */
  flushTimeoutMs?: number;
}

const DEFAULT_FLUSH_TIMEOUT_MS = 1_000;

/** Installs the policy on `process`; returns its disposer (removes both handlers). */
export function installProcessGuard(log: Logger, opts: ProcessGuardOptions = {}): () => void {
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  const flushTimeoutMs = opts.flushTimeoutMs ?? DEFAULT_FLUSH_TIMEOUT_MS;
  let exiting = false;

  const onRejection = (reason: unknown): void => {
    try {
      log.error(
        { event: 'process.unhandled_rejection', ...errorFields(reason) },
        `unhandled promise rejection (a bug; pgwarden keeps serving): ${describe(reason)}`,
      );
    } catch {
      lastResort('unhandled promise rejection', reason);
    }
  };

  const onException = (err: Error, origin: string): void => {
    if (exiting) return; // a second throw while flushing: the first one already decided
    exiting = true;
    try {
      log.fatal(
        { event: 'process.uncaught_exception', origin, ...errorFields(err) },
        `uncaught exception (a bug; pgwarden exits with status 1, its state is unknown): ${describe(err)}`,
      );
    } catch {
      lastResort('uncaught exception', err);
    }
    // Exit once the line is written, or after flushTimeoutMs if the log cannot flush.
    const timer = setTimeout(() => exit(1), flushTimeoutMs);
    try {
      log.flush(() => {
        clearTimeout(timer);
        exit(1);
      });
    } catch {
      clearTimeout(timer);
      exit(1);
    }
  };

  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return () => {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
  };
}

/** `err` for an Error (message, stack, code via pino's serializer); `reason` for anything else. */
function errorFields(reason: unknown): Record<string, unknown> {
  return reason instanceof Error ? { err: reason } : { reason: inspect(reason, { depth: 3, breakLength: Infinity }) };
}

function describe(reason: unknown): string {
  return reason instanceof Error ? reason.message : inspect(reason, { depth: 1, breakLength: Infinity });
}

/** The logger itself failed: stderr, which a supervisor keeps. */
function lastResort(what: string, reason: unknown): void {
  try {
    process.stderr.write(`pgwarden: ${what}: ${reason instanceof Error ? (reason.stack ?? reason.message) : inspect(reason)}\n`);
  } catch {
    // nothing is left to report with
  }
}
