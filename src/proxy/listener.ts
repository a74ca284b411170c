// One `net.Server` per configured listener. Owns its sessions and enforces max_connections.
import net from 'node:net';
import type { Logger } from 'pino';
import { errorResponse } from '../protocol/error-response';
import { sqlStateOf, type ClientErrorCode } from '../errors';
import { outOfDescriptors } from '../health/types';
import type { ListenerContext } from './listener-context';
import { Session } from './session';
import type { SessionLifecycle } from './session-lifecycle';
import { adoptAccepted } from '../net/relay-socket';
import { applyKeepalive } from '../net/keepalive';
import { IdleTimeout } from './idle-timeout';

export class Listener {
  private readonly server: net.Server;
  readonly sessions = new Set<Session>();
  private closedServer?: Promise<void>;
  private readonly idle: IdleTimeout;

  constructor(private readonly ctx: ListenerContext, private readonly log: Logger) {
    this.server = net.createServer({ noDelay: true, allowHalfOpen: true, pauseOnConnect: true }, (socket) => this.accept(socket));
    // Out of descriptors at accept: Node's runtime (libuv) closes the connections waiting in the
    // backlog with a descriptor it keeps in reserve, and reports the error only when even that
    // fails; then it comes once per connection, so it is logged once per burst.
    this.server.on('error', (err: NodeJS.ErrnoException) => {
      if (outOfDescriptors(err.code)) ctx.onOutOfDescriptors(`accept on listener ${ctx.listener.name}`, err.code);
      else this.log.error({ err, listener: ctx.listener.name }, 'listener error');
    });
    this.idle = new IdleTimeout(ctx.clock, () => this.sessions, () => ctx.proxy.clientIdleTimeout);
  }

  get name(): string {
    return this.ctx.listener.name;
  }

  get config(): ListenerContext['listener'] {
    return this.ctx.listener;
  }

  get queued(): number {
    return this.ctx.router.queued;
  }

  /** Bound address (useful with port 0 in tests). */
  address(): net.AddressInfo {
    return this.server.address() as net.AddressInfo;
  }

  listen(): Promise<void> {
    const { host, port, name } = this.ctx.listener;
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        reject(new Error(`listener ${name} cannot bind ${host}:${port}: ${err.code ?? err.message}`));
      };
      this.server.once('error', onError);
      this.server.listen({ host, port, backlog: 1024 }, () => {
        this.server.off('error', onError);
        this.idle.start();
        resolve();
      });
    });
  }

  /** Reload: new route/balance/fallback/limits on the same address; sessions continue. */
  reconfigure(listener: ListenerContext['listener']): void {
    this.ctx.listener = listener;
    this.ctx.router.reconfigure(listener);
  }

  /** A reload changed proxy settings: the idle sweep follows client_idle_timeout. */
  proxySettingsChanged(): void {
    if (!this.closedServer) this.idle.start();
  }

  /** Stop accepting; existing sessions continue. */
  stopAccepting(): Promise<void> {
    this.closedServer ??= new Promise((resolve) => this.server.close(() => resolve()));
    this.ctx.router.close();
    this.idle.stop();
    return this.closedServer;
  }

  private accept(socket: net.Socket): void {
    const max = this.ctx.listener.maxConnections;
    if (max > 0 && this.sessions.size >= max)
      return this.refuse(socket, 'PGW_TOO_MANY_CLIENTS', `too many client connections on listener ${this.name} (max_connections ${max})`);
    // Half-open capable so a client that sends half a startup packet and then FIN still gets a
    // proper 08P01 instead of a silent close.
    const client = adoptAccepted(socket, true);
    // Only a Node.js that keeps its socket handle somewhere other than `_handle` (see
    // adoptAccepted); the public API may still reach the client, so it gets the error.
    if (!client) return this.refuse(socket, 'PGW_INTERNAL', 'internal error: this Node.js cannot hand an accepted connection over to pgwarden');
    // A client that vanishes without a FIN (a laptop closed, a NAT that forgot the flow) must not
    // hold a server backend for hours: keepalive probes find it, TCP_USER_TIMEOUT bounds unacked data.
    const { clientKeepalive: k, clientUserTimeout } = this.ctx.proxy;
    // TCP_USER_TIMEOUT is set together with keepalive; keepalive `idle: 0` then means the kernel's 2 h.
    if (k.idleMs > 0 || clientUserTimeout > 0) {
      applyKeepalive(client, { idleMs: k.idleMs > 0 ? k.idleMs : 7_200_000, intervalMs: k.intervalMs, count: k.count, userTimeoutMs: clientUserTimeout });
    }
    const session = new Session(client, this.ctx, this.forget);
    this.sessions.add(session);
    session.start();
  }

  // A method, not a closure made in accept(): a session must not keep the accepted socket's
  // first (handed-over) object alive — idle sessions are many, and every byte counts.
  private readonly forget = (s: SessionLifecycle): void => {
    this.sessions.delete(s as Session); // every session this listener made is a Session
  };

  /** A FATAL ErrorResponse to a connection that gets no session, then the close. */
  private refuse(socket: net.Socket, code: ClientErrorCode, message: string): void {
    const sqlstate = sqlStateOf(code);
    socket.on('error', () => socket.destroy());
    socket.resume(); // paused on connect; read (and discard) until the close
    this.ctx.onClientError(sqlstate, message, code);
    socket.end(errorResponse({ severity: 'FATAL', code: sqlstate, message }));
    // The one timer of a refused connection: it ends with the socket.
    const timer = this.ctx.clock.setTimeout(() => socket.destroy(), 1000);
    socket.once('close', () => timer.clear());
  }
}
