// Opens the TCP connection from pgwarden to a backend, bounded by `connect_timeout`. Failures
// are named by layer like the health checks (L4CON refused/reset, L4TOUT timeout) so a session
// can report them and poke the backend's checker.
import net from 'node:net';
import type { FailureLayer } from '../health/types';

export class BackendConnectError extends Error {
  readonly code = 'PGW_BACKEND_CONNECT';
  constructor(readonly layer: FailureLayer, message: string) {
    super(message);
    this.name = 'BackendConnectError';
  }
}

export function connectBackend(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, noDelay: true, keepAlive: true, keepAliveInitialDelay: 10_000 });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new BackendConnectError('L4TOUT', `connect to ${host}:${port} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    timer.unref();
    const onError = (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new BackendConnectError('L4CON', `connect to ${host}:${port} failed: ${err.code ?? err.message}`));
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(socket);
    });
  });
}
