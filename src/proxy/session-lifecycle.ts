// The life of a session apart from how it gets to its server: its phase (one transition()),
// what it tells about itself (idle, in a transaction), how its sockets report, and the one
// teardown, end(), with a named cause. Session (session.ts) adds the path from the first packet
// to an established relay; the two halves share the fields below.
import { errorResponse } from '../protocol/error-response';
import { SqlState } from '../errors';
import type { FirstPacket } from '../protocol/first-packet';
import type { BackendView } from '../routing/topology';
import type { RelayEnd, SocketOwner } from '../net/relay-socket';
import type { ListenerContext } from './listener-context';
import type { CloseReason } from './close-reason';
import { canMove, type Phase } from './session-phase';
import { causeOfSocketError, type EndCause } from './end-cause';
import { FirstPacketReader, type FirstPacketHandler } from './first-packet-reader';
import type { Attempt } from './backend-attempt';
import type { MessageBoundaries } from './boundaries';
import type { RecentFailures } from './recent-failures';

export interface EndOptions {
  /** Sent as a FATAL ErrorResponse before the close (only where the client's stream allows it). */
  readonly error?: { readonly sqlstate: string; readonly message: string };
  /** Let bytes already queued for the client go out before the close (a server that closed). */
  readonly flush?: boolean;
  readonly reason?: CloseReason;
  readonly detail?: string;
}

/** How long a closing socket may take to flush before it is destroyed. */
const LINGER_MS = 1000;

/**
 * Ends whose ErrorResponse counts as a refused client (session.error, pgwarden_sessions_rejected_total).
 * A routing refusal was reported by onRejected already; drains, idle timeouts and internal
 * errors have their own reports.
 */
const REPORTED_AS_CLIENT_ERROR: ReadonlySet<EndCause> = new Set<EndCause>(['login-timeout', 'protocol-error', 'server-protocol-error']);

export abstract class SessionLifecycle implements SocketOwner, FirstPacketHandler {
  protected phase: Phase = 'reading-first-packet';
  /** Releases what the current phase set up; transition() calls it on the way out. */
  protected exitPhase?: () => void;
  protected reader: FirstPacketReader;
  protected backend?: RelayEnd;
  protected target?: BackendView;
  /** The backend's session count was raised (topology.sessionOpened) and must be lowered once. */
  protected counted = false;
  protected attempt?: Attempt;
  /** auth.mode proxy: pgwarden's login to the server in progress (phase logging-in). */
  protected login?: { abandon(reason: CloseReason): void };
  protected boundaries?: MessageBoundaries;
  protected key?: string;
  protected user?: string;
  protected database?: string;
  protected startupSize = 0;
  protected routeDeadline?: number;
  /** The backend whose startup slot (proxy.max_concurrent_startups) this session holds. */
  protected slot?: string;
  protected abort?: AbortController;
  protected failures?: RecentFailures;
  /** The server said 'N' to SSLRequest: the client continues in plain text on this backend. */
  protected sslRefused = false;
  /** The client sent FIN; its side ends once the server has said everything. */
  protected clientEnded = false;
  protected lingerTimer?: { clear(): void };
  protected readonly started: number;
  protected readonly clientAddress: string;

  /** The client's socket: the accepted one, or the TLS socket over it once pgwarden terminates TLS. */
  client: RelayEnd;
  /** The client's side is TLS that pgwarden terminates. */
  protected clientTls = false;

  constructor(
    client: RelayEnd,
    protected readonly ctx: ListenerContext,
    private readonly onClose: (s: SessionLifecycle) => void,
  ) {
    this.client = client;
    this.clientAddress = `${client.remoteAddress}:${client.remotePort}`;
    this.started = ctx.clock.now();
    // The session itself hears the reader (methods, not closures: idle sessions are many).
    this.reader = new FirstPacketReader(client, ctx.clock, this);
  }

  // ---- FirstPacketHandler ------------------------------------------------------------------

  firstPacket(p: FirstPacket): boolean {
    return this.guard(() => this.onFirstPacket(p), false);
  }

  loginTimedOut(ms: number): void {
    this.end('login-timeout', { error: { sqlstate: SqlState.PROTOCOL_VIOLATION, message: `no startup packet within client_login_timeout (${ms} ms)` } });
  }

  firstPacketsOverflow(reason: string): void {
    this.end('protocol-error', { error: { sqlstate: SqlState.PROTOCOL_VIOLATION, message: reason } });
  }

  /** The next complete first packet; true when the reader may go on to the next one. */
  protected abstract onFirstPacket(p: FirstPacket): boolean;

  get backendName(): string | undefined {
    return this.target?.name;
  }

  get isEstablished(): boolean {
    return this.phase === 'relaying';
  }

  /**
   * Connected to its backend, whose first answer has not come yet: the client has seen nothing
   * of that server, so closeAtBoundary sends it back to routing (except at shutdown).
   */
  get awaitingServer(): boolean {
    return this.phase === 'connecting' || this.phase === 'logging-in';
  }

  /** Between transactions with nothing in flight (never under TLS passthrough: bytes are opaque). */
  get isIdle(): boolean {
    return this.phase === 'relaying' && this.boundaries !== undefined && this.boundaries.isIdle;
  }

  /**
   * While idle: the number of ReadyForQuery seen so far, so a poller can tell "idle since my
   * last look" (same mark) from "busy in between" (a new mark). undefined while busy.
   */
  get idleMark(): number | undefined {
    return this.isIdle ? this.boundaries!.server.count : undefined;
  }

  /** In a transaction (or a failed one) per the last ReadyForQuery. */
  get inTransaction(): boolean {
    return this.boundaries !== undefined && this.boundaries.inTransaction;
  }


  // ---- phases ------------------------------------------------------------------------------

  /** The one place a session changes phase: checks the move, releases the old phase, logs. */
  protected transition(to: Phase): void {
    const from = this.phase;
    if (!canMove(from, to)) throw new Error(`session cannot move from ${from} to ${to}`);
    const exit = this.exitPhase;
    this.exitPhase = undefined;
    this.phase = to;
    exit?.();
    // Checked first: most processes run at info, and sessions are many.
    if (this.ctx.log.isLevelEnabled('debug')) this.ctx.log.debug({ event: 'session.phase', listener: this.ctx.listener.name, client: this.clientAddress, from, to, backend: this.target?.name }, `session ${from} → ${to}`);
  }

  /** Runs a continuation; a throw ends the session as an internal error instead of escaping. */
  protected guard<T>(fn: () => T, fallback: T): T {
    try {
      return fn();
    } catch (err) {
      this.internalError(err as Error);
      return fallback;
    }
  }

  protected internalError(err: Error): void {
    this.ctx.onInternalError(err);
    // Where the client's stream is past its startup an injected message could land mid-message.
    const error = this.phase === 'relaying' || this.phase === 'starting' ? undefined : { sqlstate: SqlState.INTERNAL_ERROR, message: 'internal error in pgwarden; the connection was closed' };
    this.end('internal-error', { error, detail: err.message });
  }


  // ---- sockets -----------------------------------------------------------------------------

  /** RelayEnd event: a FIN. Only the client is half-open capable (see Listener). */
  socketEnded(socket: RelayEnd): void {
    if (socket !== this.client) return;
    switch (this.phase) {
      case 'reading-first-packet':
        if (this.reader.pending > 0) {
          return this.end('protocol-error', { error: { sqlstate: SqlState.PROTOCOL_VIOLATION, message: `truncated startup packet: ${this.reader.pending} bytes received before the client closed` } });
        }
        return this.end('client-closed');
      case 'authenticating':
      case 'routing':
      case 'connecting':
      case 'logging-in':
      case 'moving':
        return this.end('client-closed');
      case 'starting':
      case 'relaying':
        // Half-close: pass the FIN on and keep relaying what the server still sends; the
        // session ends when the server closes (a PostgreSQL backend exits on EOF).
        this.clientEnded = true;
        this.backend?.end();
        return;
      default:
        return; // forwarding a cancel (ends by itself), or already closing
    }
  }

  socketClosed(socket: RelayEnd): void {
    if (this.phase === 'closing') return this.lingerDone();
    if (socket === this.client) return this.end(this.clientCause());
    if (socket !== this.backend) return;
    if (this.phase === 'relaying' && !this.clientEnded && this.moveWhenServerGone()) return;
    this.end(this.clientEnded ? this.clientCause() : 'server-closed', { flush: true });
  }

  socketFailed(socket: RelayEnd, err: NodeJS.ErrnoException): void {
    if (this.phase === 'closing') return; // ECONNRESET/EPIPE while closing is normal
    if (socket === this.client) this.end(causeOfSocketError('client', err), { detail: err.code ?? err.message });
    else if (socket === this.backend) {
      if (this.phase === 'relaying' && !this.clientEnded && this.moveWhenServerGone()) return;
      this.end(causeOfSocketError('server', err), { flush: true, detail: err.code ?? err.message });
    }
  }

  private clientCause(): EndCause {
    return this.boundaries?.client.terminated ? 'client-terminate' : 'client-closed';
  }

  // ---- closing -----------------------------------------------------------------------------

  /**
   * pgwarden closes this session (drain, maint, fenced, switchover, shutdown …). A server that
   * has not answered yet has sent the client nothing: the session goes back to routing instead
   * (except at shutdown). Otherwise, when the server→client stream is at a message boundary the
   * client gets a FATAL ErrorResponse saying why (drivers show it and reconnect); else a plain
   * close, since bytes injected mid-message would corrupt the stream.
   */
  closeAtBoundary(sqlstate: string, message: string, reason: CloseReason): void {
    switch (this.phase) {
      case 'connecting':
        if (reason !== 'shutdown') return this.attempt?.abandon(reason);
        return this.end('drained', { reason, error: { sqlstate, message } });
      case 'logging-in':
        // The client has seen AuthenticationOk and nothing of this server: another may take it.
        if (reason !== 'shutdown') return this.login?.abandon(reason);
        return this.end('drained', { reason, error: { sqlstate, message } });
      case 'reading-first-packet':
      case 'authenticating':
      case 'routing':
        return this.end('drained', { reason, error: { sqlstate, message } });
      case 'moving':
        // Already on its way to a new server; only a shutdown stops it.
        if (this.moveInsteadOfClose(reason)) return;
        return this.end('drained', { reason, error: { sqlstate, message } });
      case 'starting':
      case 'relaying': {
        if (this.phase === 'relaying' && this.moveInsteadOfClose(reason)) return;
        const b = this.boundaries;
        if (this.phase === 'relaying') this.ctx.onClosedByProxy(this.target?.name, reason, this.inTransaction);
        return this.end('drained', { reason, error: b?.server.atBoundary ? { sqlstate, message } : undefined });
      }
      default:
        return;
    }
  }

  /** sessions.survive (movable-session.ts): move instead of closing for `reason`; false: close as before. */
  protected moveInsteadOfClose(_reason: CloseReason): boolean {
    return false;
  }

  /** sessions.survive: the server socket went away while relaying; true when the session moves instead of ending. */
  protected moveWhenServerGone(): boolean {
    return false;
  }

  /** Closes the idle session (proxy.client_idle_timeout), like PostgreSQL's idle_session_timeout. */
  closeIdle(timeoutMs: number): void {
    if (!this.isIdle) return;
    this.end('idle-timeout', { error: { sqlstate: SqlState.IDLE_SESSION_TIMEOUT, message: `terminating connection due to idle-session timeout (pgwarden client_idle_timeout ${timeoutMs} ms)` } });
  }

  /** Close now (the client's side is destroyed, the server gets a FIN). */
  close(): void {
    this.end('client-closed');
  }

  /**
   * The one teardown: leave the phase (its disposer frees timers and listeners), close both
   * sockets the way `cause` calls for, report once, and linger until both are closed.
   */
  protected end(cause: EndCause, opts: EndOptions = {}): void {
    if (this.phase === 'closing' || this.phase === 'ended') return;
    const from = this.phase;
    this.transition('closing');
    this.reader.dispose();
    this.abort?.abort();
    this.releaseSlot();
    const c = this.client;
    const b = this.backend;
    if (b) {
      b.unrelay();
      c.unrelay();
      // A client that left gets a clean FIN to its server (PostgreSQL logs no "unexpected EOF").
      if (!b.destroyed && (cause === 'client-closed' || cause === 'client-terminate')) b.end();
      else b.destroy();
    }
    if (c.destroyed || !c.writable) c.destroy();
    else if (opts.error) c.end(errorResponse({ severity: 'FATAL', code: opts.error.sqlstate, message: opts.error.message }));
    else if (opts.flush) c.end();
    else c.destroy();
    if (opts.error && REPORTED_AS_CLIENT_ERROR.has(cause)) this.ctx.onClientError(opts.error.sqlstate, opts.error.message);
    this.report(cause, opts, from);
    if (this.socketsClosed()) this.lingerDone();
    else this.lingerTimer = this.ctx.clock.setTimeout(() => {
      this.lingerTimer = undefined;
      c.destroy();
      b?.destroy();
      this.lingerDone();
    }, LINGER_MS);
  }

  private socketsClosed(): boolean {
    return this.client.destroyed && (this.backend === undefined || this.backend.destroyed);
  }

  /** The last step: once both sockets are gone (or were destroyed at the linger deadline). */
  private lingerDone(): void {
    if (this.phase !== 'closing' || !(this.socketsClosed() || this.lingerTimer === undefined)) return;
    this.lingerTimer?.clear();
    this.lingerTimer = undefined;
    this.transition('ended');
  }

  /** The startup ended (ready, failed, given up): its slot goes to the next session. Once. */
  protected releaseSlot(): void {
    const backend = this.slot;
    if (backend === undefined) return;
    this.slot = undefined;
    this.ctx.startups.release(backend);
  }

  protected releaseBackend(): void {
    this.uncount();
    this.backend = undefined;
  }

  /** Lowers the backend's session count once, if this session raised it. */
  private uncount(): void {
    if (this.counted && this.target) this.ctx.topology.sessionClosed(this.target.name);
    this.counted = false;
  }

  private report(cause: EndCause, opts: EndOptions, from: Phase): void {
    if (this.key) this.ctx.cancels.delete(this.key);
    const backend = this.target?.name;
    this.uncount();
    this.onClose(this);
    this.ctx.onSessionEnd({
      backend,
      client: this.clientAddress,
      user: this.user,
      database: this.database,
      cause,
      ...(opts.reason !== undefined && { reason: opts.reason }),
      ...(opts.detail !== undefined && { detail: opts.detail }),
      phase: from,
      durationMs: this.ctx.clock.now() - this.started,
      bytesFromClient: this.client.bytesRead,
      bytesToClient: this.client.bytesWritten,
    });
  }
}
