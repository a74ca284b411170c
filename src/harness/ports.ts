// Part of the cluster harness for the demo, tests and benchmarks (see cluster.ts); not the proxy.
// Free TCP ports for test servers. The range stays below 32768 because Linux hands out
// 32768-60999 as ephemeral source ports: a listener fixed in that range can collide with a
// busy test's own outgoing connections (see STYLE.md, habit 11).
import { connect, createServer } from 'node:net';
import { PgwardenError } from '../errors';

const LOW = 20000;
const HIGH = 32000; // exclusive
const ATTEMPTS = 100;

// Ports handed out by this process recently: two clusters created in parallel in one process
// must not both get a port that is still free because neither server has bound it yet.
const handedOut = new Set<number>();
const HANDED_OUT_LIMIT = 2000;

export class NoFreePort extends PgwardenError {
  declare readonly code: 'PGW_NO_FREE_PORT';
  constructor(attempts: number) {
    super('PGW_NO_FREE_PORT', `no free TCP port on 127.0.0.1 in [${LOW}, ${HIGH}) after ${attempts} random attempts`);
  }
}

/** A random port in [20000, 32000) that binds on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW));
    if (handedOut.has(port)) continue;
    if (await canBind(port)) {
      remember(port);
      return port;
    }
  }
  throw new NoFreePort(ATTEMPTS);
}

function remember(port: number): void {
  if (handedOut.size >= HANDED_OUT_LIMIT) handedOut.clear();
  handedOut.add(port);
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
      server.close(() => resolve(true));
    });
  });
}

/** True when a TCP connect to 127.0.0.1:port is refused (the listener is gone). */
export function portRefuses(port: number): Promise<boolean> {
  return new Promise((resolvePort) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setTimeout(1000);
    socket.once('connect', () => {
      socket.destroy();
      resolvePort(false);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolvePort(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolvePort(err.code === 'ECONNREFUSED'));
    socket.once('close', () => resolvePort(false)); // no-op when error/connect already resolved
  });
}
