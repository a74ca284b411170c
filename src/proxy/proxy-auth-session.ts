// The session's two phases of auth.mode proxy (proxy-auth.ts has the pieces, DESIGN.md "A
// session's life"): between the StartupMessage and routing, `authenticating` (auth.query, then
// the exchange with the client), and between connecting and relaying, `logging-in` (pgwarden's
// own login to the server, retried on the next candidate when the server was cut off or said
// 57P03). A class of its own between SessionLifecycle and Session so that session.ts keeps only
// the path every session takes; Session provides proceed() and redispatch().
import { cancelKey } from '../protocol/cancel';
import { SqlState } from '../errors';
import type { BackendView } from '../routing/topology';
import type { RelayEnd } from '../net/relay-socket';
import type { LoginResult } from '../survive/contracts';
import type { ServerLoginError } from '../survive/server-login';
import { AuthLookupError, type Lookup } from './auth-lookup';
import { BackendConnectError } from './backend-connect';
import type { AttemptOutcome } from './backend-attempt';
import { MessageBoundaries } from './boundaries';
import type { CloseReason } from './close-reason';
import { FirstPacketReader } from './first-packet-reader';
import { authenticateClient, issueKey, logInToServer, planFor, startupTail } from './proxy-auth';
import { MovableSession } from './movable-session';

/** What a backend attempt is for, which decides what its answer means. */
export type Purpose = 'ssl' | 'startup' | 'direct-tls' | 'login';

/** An attempt that failed for the server's reasons (or pgwarden closed it): another candidate may do. */
export type Redispatchable = Exclude<AttemptOutcome, { ok: true } | { local: unknown }>;

const NO_BYTES = Buffer.alloc(0);

export abstract class ProxyAuthSession extends MovableSession {
  // startupParams and loginSecret (what logs in as the client's user; in memory only, for the
  // session's life, never logged) are MovableSession's: the mover logs in again with them.
  /** auth.mode proxy: the cancel key pgwarden issued to the client (retarget its registry entry when the session moves). */
  issuedKey?: { readonly processId: number; readonly secretKey: number };

  /** On to the server: the backend kept after an SSL 'N', else routing. */
  protected abstract proceed(purpose: 'startup' | 'login'): void;
  protected abstract redispatch(view: BackendView, purpose: Purpose, firstBytes: Buffer, outcome: Redispatchable): void;

  /** The StartupMessage is in (its bytes on the reader): check the client's password here. */
  protected authenticate(params: Readonly<Record<string, string>>, protocolMinor: number): false {
    this.transition('authenticating');
    this.reader.hold();
    const user = params.user;
    // No user: the server refuses it itself (28000), exactly as without pgwarden. A client that
    // asks for a newer protocol (3.x, `_pq_.` options) is answered by the server's own
    // negotiation, which pgwarden's 3.0 login would hide from it: such a session stays end to end.
    if (user === undefined || protocolMinor !== 0 || Object.keys(params).some((k) => k.startsWith('_pq_.'))) {
      this.proceed('startup');
      return false;
    }
    let live = true;
    let stopExchange: (() => void) | undefined;
    const ms = this.ctx.proxy.clientLoginTimeout;
    const timer = this.ctx.clock.setTimeout(() => {
      const message = `authentication did not finish within client_login_timeout (${ms} ms)`;
      this.end('login-timeout', { error: { sqlstate: SqlState.PROTOCOL_VIOLATION, message } });
    }, ms);
    this.exitPhase = () => {
      live = false;
      timer.clear();
      stopExchange?.();
    };
    const current = () => live && this.phase === 'authenticating';
    this.ctx.lookupSecret(user).then(
      (lookup) =>
        this.guard(() => {
          if (current()) stopExchange = this.secretFound(user, lookup);
        }, undefined),
      (err: Error) => this.guard(() => current() && this.lookupFailed(err), undefined),
    );
    return false;
  }

  private secretFound(user: string, lookup: Lookup): (() => void) | undefined {
    const plan = planFor(user, lookup, this.ctx.authMockKey);
    if (plan.kind === 'passthrough') {
      // Nothing pgwarden could replay later: this session stays end to end, as under passthrough.
      this.proceed('startup');
      return undefined;
    }
    const pending = Buffer.from(this.reader.take().subarray(this.startupSize));
    this.reader.dispose();
    return authenticateClient(this.client, plan.exchange, pending, {
      passed: (secret, leftover) =>
        this.guard(() => {
          this.loginSecret = secret;
          // Whatever the client sends now waits (bounded) until the server is logged in to.
          this.reader = new FirstPacketReader(this.client, this.ctx.clock, this);
          this.reader.unshift(leftover);
          this.reader.hold();
          this.proceed('login');
        }, undefined),
      refused: (r) =>
        this.guard(() => {
          this.ctx.onClientError(r.sqlstate, r.message, r.sqlstate === SqlState.INVALID_PASSWORD ? 'PGW_AUTH_FAILED' : 'PGW_CLIENT_ERROR');
          this.end('auth-failed', { error: { sqlstate: r.sqlstate, message: r.message }, detail: r.sqlstate });
        }, undefined),
    });
  }

  private lookupFailed(err: Error): void {
    if (!(err instanceof AuthLookupError)) throw err;
    this.ctx.onClientError(SqlState.CANNOT_CONNECT_NOW, err.message, 'PGW_AUTH_LOOKUP');
    this.end('rejected', { error: { sqlstate: SqlState.CANNOT_CONNECT_NOW, message: err.message }, detail: err.code });
  }

  /** Connected to `view` (TLS done if any): pgwarden logs in as the client's user. */
  protected logIn(view: BackendView, socket: RelayEnd): void {
    this.transition('logging-in');
    this.backend = socket;
    const handle = logInToServer(socket, this.startupParams!, this.loginSecret!, this.ctx.clock, this.ctx.proxy.startupTimeout, {
      loggedIn: (r) => this.guard(() => this.loggedIn(view, socket, r), undefined),
      failed: (err, closedBy) => this.guard(() => this.loginFailed(view, socket, err, closedBy), undefined),
    });
    this.login = handle;
    this.exitPhase = () => {
      handle.dispose();
      this.login = undefined;
    };
  }

  private loggedIn(view: BackendView, socket: RelayEnd, r: LoginResult): void {
    socket.reportTo(this);
    const own = issueKey(this.ctx.cancels, this.ctx.peers?.ownTag);
    this.issuedKey = own;
    this.key = cancelKey(own.processId, own.secretKey);
    this.ctx.cancels.add(this.key, { backend: view.name, host: view.config.host, port: view.config.port, serverKey: { processId: r.processId, secretKey: r.secretKey } });
    const tail = startupTail(r.parameters, own.processId, own.secretKey);
    // The header trackers, or with sessions.survive the taps that also feed the state tracker
    // (which learns client_encoding and the rest from the tail's ParameterStatus messages).
    const w = this.watchers((this.boundaries = new MessageBoundaries()), tail);
    w.server.feed(tail);
    this.transition('relaying');
    this.releaseSlot();
    this.client.write(tail);
    const early = this.reader.take();
    this.reader.dispose();
    if (early.length > 0) {
      socket.write(early);
      w.client.feed(early);
    }
    this.client.relayTo(socket, w.client);
    this.relayServer(socket);
    this.ctx.onSessionStart(view.name);
  }

  private loginFailed(view: BackendView, socket: RelayEnd, err: ServerLoginError, closedBy: string | undefined): void {
    socket.destroy();
    if (closedBy !== undefined && closedBy !== 'timeout') return this.redispatch(view, 'login', NO_BYTES, { ok: false, closedBy: closedBy as CloseReason });
    const where = `${view.config.host}:${view.config.port}`;
    if (closedBy === 'timeout') {
      const error = new BackendConnectError('L7TOUT', `${where} did not finish the login within ${this.ctx.proxy.startupTimeout} ms`);
      return this.redispatch(view, 'login', NO_BYTES, { ok: false, error });
    }
    if (err.retryable) {
      const error = new BackendConnectError(err.sqlstate === '57P03' ? 'L7QUERY' : 'L4CON', `${where} ${err.message}`);
      return this.redispatch(view, 'login', NO_BYTES, { ok: false, error });
    }
    const message = err.fromServer ? err.message : `pgwarden could not log in to ${view.name} as "${this.user ?? ''}": ${err.message}`;
    this.ctx.onClientError(err.sqlstate, message, 'PGW_SERVER_LOGIN');
    this.end('login-failed', { error: { sqlstate: err.sqlstate, message }, detail: err.sqlstate });
  }
}
