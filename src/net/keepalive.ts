// TCP keepalive and TCP_USER_TIMEOUT for the sockets pgwarden opens to backends, so that a server
// that vanishes without a FIN or RST (power loss, a cut cable, a firewall that drops silently)
// is noticed in seconds rather than in the kernel's defaults (keepalive after 2 hours,
// retransmissions for ~15 minutes).
//
// Node sets SO_KEEPALIVE and TCP_KEEPIDLE (socket.setKeepAlive) but not TCP_KEEPINTVL,
// TCP_KEEPCNT or TCP_USER_TIMEOUT; the `net-keepalive` package calls setsockopt for those. It is
// loaded lazily and may be missing or fail on this platform: then the socket keeps Node's own
// keepalive (idle time only, kernel default interval and count), a warning is reported once, and
// nothing ever throws into the connection path.
import type net from 'node:net';
import type { ErrorCode } from '../errors';

export interface KeepaliveOptions {
  /** Idle time before the first keepalive probe (TCP_KEEPIDLE; whole seconds, at least 1 s). */
  readonly idleMs: number;
  /** Time between unanswered probes (TCP_KEEPINTVL; whole seconds, at least 1 s). */
  readonly intervalMs: number;
  /** Unanswered probes before the kernel drops the connection (TCP_KEEPCNT). */
  readonly count: number;
  /**
   * TCP_USER_TIMEOUT: how long sent data (or keepalive probes) may stay unacknowledged before
   * the kernel drops the connection with ETIMEDOUT. Linux lets it override `count` for
   * keepalive. Absent or 0: the kernel default (retransmissions for about 15 minutes).
   */
  readonly userTimeoutMs?: number;
}

/** Where the one-time "fell back to Node's keepalive" warning goes; set once by the App. */
export interface KeepaliveWarningSink {
  warn(obj: object, msg: string): void;
}

interface NetKeepalive {
  setKeepAliveInterval(socket: net.Socket, msecs: number): boolean;
  setKeepAliveProbes(socket: net.Socket, count: number): boolean;
  setUserTimeout(socket: net.Socket, msecs: number): boolean;
}

export const KEEPALIVE_FALLBACK_CODE: ErrorCode = 'PGW_KEEPALIVE_FALLBACK';

/**
 * libuv 1.45 and later (Node.js 20 has 1.46) set TCP_KEEPINTVL to 1 s and TCP_KEEPCNT to 10
 * whenever socket.setKeepAlive(true) sets TCP_KEEPIDLE.
 */
const LIBUV_KEEPALIVE = ((): boolean => {
  const [major, minor] = process.versions.uv.split('.').map(Number);
  return major > 1 || (major === 1 && minor >= 45);
})();

let native: NetKeepalive | null | undefined; // undefined: not loaded yet; null: unavailable
let sink: KeepaliveWarningSink | undefined;
let warned = false;

/** Send the one-time fallback warning to this logger (otherwise process.emitWarning). */
export function setKeepaliveWarningSink(next: KeepaliveWarningSink | undefined): void {
  sink = next;
}

/**
 * Turns on keepalive with these timings. Call it on a connected socket (the options are set on
 * its file descriptor, which exists once 'connect' fired). Never throws; returns whether the
 * full set (interval, count and user timeout) was applied, false when only Node's keepalive is.
 */
export function applyKeepalive(socket: net.Socket, opts: KeepaliveOptions): boolean {
  const idleMs = atLeastOneSecond(opts.idleMs);
  try {
    socket.setKeepAlive(true, idleMs);
  } catch {
    return false; // a destroyed socket: nothing to set, and nothing to warn about
  }
  if (socket.destroyed) return false;
  const lib = loadNative();
  if (lib === null) return false;
  try {
    // Each setsockopt through the FFI costs more than a connection's other JavaScript work, so
    // the ones that would not change anything are skipped (see LIBUV_KEEPALIVE).
    const intervalMs = atLeastOneSecond(opts.intervalMs);
    const count = Math.max(1, Math.round(opts.count));
    const userTimeout = opts.userTimeoutMs !== undefined && opts.userTimeoutMs > 0;
    if (!LIBUV_KEEPALIVE || intervalMs !== 1000) lib.setKeepAliveInterval(socket, intervalMs);
    // Linux: a TCP_USER_TIMEOUT decides when keepalive gives up, the probe count is not used.
    if (!(userTimeout && process.platform === 'linux') && (!LIBUV_KEEPALIVE || count !== 10)) lib.setKeepAliveProbes(socket, count);
    if (userTimeout) lib.setUserTimeout(socket, Math.round(opts.userTimeoutMs!));
    return true;
  } catch (err) {
    // A socket closed between 'connect' and here has no descriptor; that is no platform problem.
    if (!socket.destroyed) warnOnce(`setsockopt failed: ${describe(err)}`);
    return false;
  }
}

/** Whether TCP_KEEPINTVL/TCP_KEEPCNT/TCP_USER_TIMEOUT can be set here (loads the module once). */
export function keepaliveTuningAvailable(): boolean {
  return loadNative() !== null;
}

function loadNative(): NetKeepalive | null {
  if (native !== undefined) return native;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    native = require('net-keepalive') as NetKeepalive;
  } catch (err) {
    native = null;
    warnOnce(`the net-keepalive module could not be loaded: ${describe(err)}`);
  }
  return native;
}

function warnOnce(reason: string): void {
  if (warned) return;
  warned = true;
  const msg =
    `TCP keepalive interval/count and TCP_USER_TIMEOUT are not available (${reason}); ` +
    'backend connections use Node keepalive only, so a silently vanished server takes longer to notice';
  if (sink !== undefined) sink.warn({ event: 'keepalive.fallback', code: KEEPALIVE_FALLBACK_CODE }, msg);
  else process.emitWarning(msg, { code: KEEPALIVE_FALLBACK_CODE });
}

// Keepalive timings are whole seconds in the kernel; 0 would mean "leave the default".
function atLeastOneSecond(ms: number): number {
  return Math.max(1000, Math.round(ms / 1000) * 1000);
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
