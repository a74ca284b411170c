// Opens the TCP connection from pgwarden to a backend, bounded by `connect_timeout`. Failures
// are named by layer like the health checks (L4CON refused/reset, L4TOUT timeout) so a session
// can report them and poke the backend's checker.
import { OutOfDescriptorsError, PgwardenError } from '../errors';
import { outOfDescriptors, type FailureLayer } from '../health/types';
import { applyKeepalive, type KeepaliveOptions } from '../net/keepalive';
import { RelaySocket } from '../net/relay-socket';
import { realClock } from '../clock';
import type { Clock } from '../clock';

/**
 * Keepalive on session sockets. Sessions are many and mostly idle, so the first probe waits 10 s;
 * an idle session on a backend that vanished is normally closed sooner by the drain that follows
 * the checker's DOWN. What keepalive and TCP_USER_TIMEOUT add is the session with bytes in flight
 * to a silent server: without them the kernel retransmits for ~15 minutes before giving up.
 */
export const SESSION_KEEPALIVE: Omit<KeepaliveOptions, 'userTimeoutMs'> = { idleMs: 10_000, intervalMs: 1_000, count: 5 };

/** Lives here, not in src/errors.ts, because it carries health's FailureLayer; its code is catalogued there. */
export class BackendConnectError extends PgwardenError {
  declare readonly code: 'PGW_BACKEND_CONNECT';
  constructor(readonly layer: FailureLayer, message: string) {
    super('PGW_BACKEND_CONNECT', message);
  }
}

/**
 * `userTimeoutMs` (TCP_USER_TIMEOUT) should be health `timeout × fall`: a server that has not
 * acknowledged anything for that long would be marked down by the checks anyway. The socket reads
 * into the shared read buffer (see RelaySocket).
 */
/** Rejects with a BackendConnectError, or an OutOfDescriptorsError when pgwarden has no descriptor left for the socket. */
export function connectBackend(host: string, port: number, timeoutMs: number, userTimeoutMs?: number, clock: Clock = realClock): Promise<RelaySocket> {
  return new Promise((resolve, reject) => {
    const socket = new RelaySocket({ noDelay: true }).connect({ host, port });
    const timer = clock.setTimeout(() => {
      socket.destroy();
      reject(new BackendConnectError('L4TOUT', `connect to ${host}:${port} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    const onError = (err: NodeJS.ErrnoException) => {
      timer.clear();
      socket.destroy();
      if (outOfDescriptors(err.code)) {
        reject(new OutOfDescriptorsError(err.code!, `pgwarden is out of file descriptors (${err.code}) and cannot open a connection to ${host}:${port}; try again in a moment`));
      } else {
        reject(new BackendConnectError('L4CON', `connect to ${host}:${port} failed: ${err.code ?? err.message}`));
      }
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      timer.clear();
      socket.off('error', onError);
      // Never an unhandled 'error' between here and the session attaching its own handler.
      socket.holdErrors();
      applyKeepalive(socket, { ...SESSION_KEEPALIVE, ...(userTimeoutMs !== undefined && { userTimeoutMs }) });
      resolve(socket);
    });
  });
}
