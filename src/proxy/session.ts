// One client connection, as an explicit phase machine (see session-phase.ts): read the first
// packet, route, make one backend attempt at a time (redispatching on failure), watch the
// startup, then relay both ways with backpressure while following message headers. Every move
// goes through transition(); every phase's timers and listeners are released by the disposer it
// registered (exitPhase); every end goes through end(), with one named cause.
//
// The pieces: FirstPacketReader (first packets, login timer), startAttempt (connect + first
// answer), tls-negotiation (the server's answer to SSLRequest under passthrough), watchStartup
// (BackendKeyData, first ReadyForQuery, non-PostgreSQL answers), MessageBoundaries (idle,
// transaction, Terminate), forwardCancel (exact or rate-bounded fan-out).
import { errorResponse } from '../protocol/error-response';
import { cancelKey } from '../protocol/cancel';
import type { FirstPacket } from '../protocol/first-packet';
import { SqlState, RoutingError } from '../errors';
import type { BackendView } from '../routing/topology';
import type { RelaySocket, SocketOwner } from '../net/relay-socket';
import type { ListenerContext } from './listener-context';
import type { CloseReason } from './close-reason';
import { canMove, type Phase } from './session-phase';
import { causeOfSocketError, type EndCause } from './end-cause';
import { FirstPacketReader } from './first-packet-reader';
import { startAttempt, type Attempt, type AttemptOutcome } from './backend-attempt';
import { BackendConnectError } from './backend-connect';
import { SSL_REQUEST_BYTES, readSslAnswer } from './tls-negotiation';
import { watchStartup } from './startup-watch';
import { MessageBoundaries } from './boundaries';
import { forwardCancel } from './cancel-forwarder';
import { RecentFailures } from './recent-failures';

export type { CloseReason } from './close-reason';

/** What a backend attempt was for, which decides what its answer means. */
type Purpose = 'ssl' | 'startup' | 'direct-tls';

interface EndOptions {
  /** Sent as a FATAL ErrorResponse before the close (only where the client's stream allows it). */
  readonly error?: { readonly sqlstate: string; readonly message: string };
  /** Let bytes already queued for the client go out before the close (a server that closed). */
  readonly flush?: boolean;
  readonly reason?: CloseReason;
  readonly detail?: string;
}

/** How long a closing socket may take to flush before it is destroyed. */
const LINGER_MS = 1000;

export class Session implements SocketOwner {
  private phase: Phase = 'reading-first-packet';
  /** Releases what the current phase set up; transition() calls it on the way out. */
  private exitPhase?: () => void;
  private readonly reader: FirstPacketReader;
  private backend?: RelaySocket;
  private target?: BackendView;
  /** The backend's session count was raised (topology.sessionOpened) and must be lowered once. */
  private counted = false;
  private attempt?: Attempt;
  private boundaries?: MessageBoundaries;
  private key?: string;
  private user?: string;
  private database?: string;
  private startupSize = 0;
  private routeDeadline?: number;
  private abort?: AbortController;
  private failures?: RecentFailures;
  /** The server said 'N' to SSLRequest: the client continues in plain text on this backend. */
  private sslRefused = false;
  /** The client sent FIN; its side ends once the server has said everything. */
  private clientEnded = false;
  private lingerTimer?: { clear(): void };
  private readonly started: number;
  private readonly clientAddress: string;

  constructor(
    readonly client: RelaySocket,
    private readonly ctx: ListenerContext,
    private readonly onClose: (s: Session) => void,
  ) {
    this.clientAddress = `${client.remoteAddress}:${client.remotePort}`;
    this.started = ctx.clock.now();
    this.reader = new FirstPacketReader(client, ctx.clock, () => ctx.proxy.clientLoginTimeout, {
      packet: (p) => this.guard(() => this.onFirstPacket(p), false),
      loginTimeout: (ms) => this.end('login-timeout', { error: { sqlstate: SqlState.PROTOCOL_VIOLATION, message: `no startup packet within client_login_timeout (${ms} ms)` } }),
      overflow: (reason) => this.end('protocol-error', { error: { sqlstate: SqlState.PROTOCOL_VIOLATION, message: reason } }),
    });
  }

  start(): void {
    this.client.setNoDelay(true);
    this.client.reportTo(this);
    this.reader.parse();
  }

  get backendName(): string | undefined {
    return this.target?.name;
  }

  get currentPhase(): Phase {
    return this.phase;
  }

  get isEstablished(): boolean {
    return this.phase === 'relaying';
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
  private transition(to: Phase): void {
    const from = this.phase;
    if (!canMove(from, to)) throw new Error(`session cannot move from ${from} to ${to}`);
    const exit = this.exitPhase;
    this.exitPhase = undefined;
    this.phase = to;
    exit?.();
    this.ctx.log.debug({ event: 'session.phase', listener: this.ctx.listener.name, client: this.clientAddress, from, to, backend: this.target?.name }, `session ${from} → ${to}`);
  }

  /** Runs a continuation; a throw ends the session as an internal error instead of escaping. */
  private guard<T>(fn: () => T, fallback: T): T {
    try {
      return fn();
    } catch (err) {
      this.internalError(err as Error);
      return fallback;
    }
  }

  private internalError(err: Error): void {
    this.ctx.onInternalError(err);
    // Where the client's stream is past its startup an injected message could land mid-message.
    const error = this.phase === 'relaying' || this.phase === 'starting' ? undefined : { sqlstate: SqlState.INTERNAL_ERROR, message: 'internal error in pgwarden; the connection was closed' };
    this.end('internal-error', { error, detail: err.message });
  }

  /** Returns true when the reader may go on to the next packet in its buffer. */
  private onFirstPacket(p: FirstPacket): boolean {
    switch (p.kind) {
      case 'incomplete':
        return false;
      case 'invalid':
        this.end('protocol-error', { error: { sqlstate: p.sqlstate, message: p.reason } });
        return false;
      case 'gssenc':
        // GSSAPI encryption is not proxied: refuse it, the client continues in plain text or TLS.
        this.client.write('N');
        return true;
      case 'ssl':
        if (this.ctx.tls.mode === 'disable' || this.sslRefused) {
          this.client.write('N');
          return true;
        }
        this.route('ssl');
        return false;
      case 'direct-tls':
        // A TLS ClientHello cannot be answered with a plain ErrorResponse.
        if (this.ctx.tls.mode === 'disable') this.end('protocol-error', { detail: 'direct TLS with tls.mode disable' });
        else this.route('direct-tls');
        return false;
      case 'cancel':
        this.cancel(p.processId, p.secretKey);
        return false;
      case 'startup':
        this.startupSize = p.size;
        this.user = p.params.user;
        this.database = p.params.database ?? p.params.user;
        if (this.backend && this.target) this.connect(this.target, 'startup', this.backend);
        else this.route('startup');
        return false;
    }
  }

  /** Ask the router for a backend (waiting in the queue if needed), then attempt it. */
  private route(purpose: Purpose): void {
    this.transition('routing');
    this.reader.hold();
    // One deadline for the whole session: a redispatch after a silent or dying server does not
    // restart the queue_timeout clock.
    const deadline = (this.routeDeadline ??= this.ctx.clock.now() + this.ctx.failover.queueTimeout);
    const excluded = () => this.failures?.active() ?? NOTHING_EXCLUDED;
    const signal = () => (this.abort ??= new AbortController()).signal;
    this.ctx.router.acquire(excluded, deadline, signal).then(
      (view) => this.guard(() => this.phase === 'routing' && this.connect(view, purpose), undefined),
      (err: Error) => this.guard(() => this.phase === 'routing' && this.routingFailed(err), undefined),
    );
  }

  private routingFailed(err: Error): void {
    if (!(err instanceof RoutingError)) throw err;
    // Counted and logged once, here; the end below reports no second refusal.
    this.ctx.onRejected(err);
    const error = err.code === 'PGW_CLIENT_GONE' ? undefined : { sqlstate: err.sqlstate, message: err.message };
    this.end('rejected', { error, detail: err.code });
  }

  private connect(view: BackendView, purpose: Purpose, open?: RelaySocket): void {
    this.transition('connecting');
    this.reader.hold();
    this.target = view;
    // Everything the client sent so far goes to the server (the StartupMessage and anything
    // pipelined after it, or the start of a TLS ClientHello); SSLRequest is pgwarden's own copy.
    const firstBytes = purpose === 'ssl' ? SSL_REQUEST_BYTES : this.reader.take();
    const { proxy, health } = this.ctx;
    const attempt = startAttempt(
      { view, socket: open, firstBytes, awaitAnswer: purpose !== 'direct-tls' },
      { clock: this.ctx.clock, connectTimeoutMs: proxy.connectTimeout, startupTimeoutMs: proxy.startupTimeout, userTimeoutMs: health.timeout * health.fall },
      {
        connected: (socket) =>
          this.guard(() => {
            this.backend = socket;
            this.ctx.topology.sessionOpened(view.name);
            this.counted = true;
          }, undefined),
        slowAnswer: (ms) => this.ctx.onSlowAnswer(view.name, ms),
        settled: (outcome) => this.guard(() => this.attemptSettled(view, purpose, firstBytes, outcome), undefined),
      },
    );
    this.attempt = attempt;
    this.exitPhase = () => {
      attempt.dispose();
      this.attempt = undefined;
    };
  }

  private attemptSettled(view: BackendView, purpose: Purpose, firstBytes: Buffer, outcome: AttemptOutcome): void {
    if (!outcome.ok) return this.redispatch(view, purpose, firstBytes, outcome);
    this.backend = outcome.socket;
    outcome.socket.reportTo(this);
    if (purpose === 'direct-tls') return this.relayOpaque();
    const answer = outcome.answer!;
    if (purpose === 'startup') return this.beginStarting(answer, firstBytes.subarray(this.startupSize));
    switch (readSslAnswer(answer)) {
      case 'accepted':
        // End-to-end TLS between client and server: from here on the bytes are opaque (anything
        // after the 'S' in the same chunk is already the server's TLS and goes along).
        this.client.write(answer);
        return this.relayOpaque();
      case 'refused':
        // The server has no TLS: tell the client, keep this backend and read its StartupMessage.
        this.sslRefused = true;
        this.client.write(answer.subarray(0, 1));
        this.transition('reading-first-packet');
        this.reader.parse();
        return;
      case 'invalid':
        this.serverNotPostgres(view, `answered SSLRequest with 0x${answer[0].toString(16)}`, true);
    }
  }

  /** The attempt failed before the server said anything: try the next candidate. */
  private redispatch(view: BackendView, purpose: Purpose, firstBytes: Buffer, outcome: AttemptOutcome & { ok: false }): void {
    this.releaseBackend();
    if ('closedBy' in outcome) {
      // A server pgwarden closed is already out of the router's candidates (down, maint, fenced)
      // or, after a reload that moved it, worth trying at once at its new address.
      this.ctx.onRedispatch(view.name, outcome.closedBy);
    } else {
      this.recentFailures().add(view.name);
      this.ctx.onConnectFailure(view.name, outcome.error);
    }
    this.target = undefined;
    // After an SSL 'N' the client is in plain text: the redispatch skips straight to the startup.
    if (purpose !== 'ssl') this.reader.unshift(firstBytes);
    this.route(purpose);
  }

  /** The server's first startup answer is in: it flows to the client until ReadyForQuery. */
  private beginStarting(answer: Buffer, pipelined: Buffer): void {
    this.transition('starting');
    const backend = this.backend!;
    const b = (this.boundaries = new MessageBoundaries());
    b.client.feed(pipelined);
    // The client waited for the server's first answer before saying more, so it stayed on the
    // reader until now: a redispatch lost nothing. From here client→server is a relay
    // (anything the client sent meanwhile goes first).
    const early = this.reader.take();
    this.reader.dispose();
    if (early.length > 0) {
      backend.write(early);
      b.client.feed(early);
    }
    this.client.relayTo(backend, b.client);
    this.exitPhase = watchStartup(backend, this.client, b.server, answer, {
      keyData: (pid, secret) => {
        this.key = cancelKey(pid, secret);
        const { name, config } = this.target!;
        this.ctx.cancels.add(this.key, { backend: name, host: config.host, port: config.port });
      },
      ready: () =>
        this.guard(() => {
          // Startup finished: from the next byte on, server→client is a plain relay too, with
          // the frame tracker reading 5-byte headers beside it (no copies, no body parsing).
          this.transition('relaying');
          backend.relayTo(this.client, b.server);
          this.ctx.onSessionStart(this.target!.name);
        }, undefined),
      malformed: (reason, forwarded, atBoundary) =>
        this.guard(() => this.serverNotPostgres(this.target!, reason, forwarded === 0 || atBoundary), undefined),
    });
  }

  /** TLS passthrough: opaque bytes both ways; the cancel key stays unknown (encrypted). */
  private relayOpaque(): void {
    this.transition('relaying');
    const backend = this.backend!;
    const early = this.reader.take();
    this.reader.dispose();
    if (early.length > 0) backend.write(early);
    this.client.relayTo(backend);
    backend.relayTo(this.client);
    this.ctx.onSessionStart(this.target!.name);
  }

  /** A server that does not speak PostgreSQL is a failed connect: checker poked, client told. */
  private serverNotPostgres(view: BackendView, what: string, canTellClient: boolean): void {
    const message = `server ${view.name} (${view.config.host}:${view.config.port}) did not answer like a PostgreSQL server: ${what}`;
    this.ctx.onConnectFailure(view.name, new BackendConnectError('L7RSP', message));
    this.end('server-protocol-error', { error: canTellClient ? { sqlstate: SqlState.PROTOCOL_VIOLATION, message } : undefined, detail: what });
  }

  private cancel(processId: number, secretKey: number): void {
    this.transition('forwarding-cancel');
    this.reader.hold();
    // The client waits for the close as its sign that the server has the request (libpq does),
    // so the session ends after the delivery, not before.
    forwardCancel(processId, secretKey, this.ctx).then(
      (outcome) => {
        this.ctx.onCancel(outcome);
        this.end('cancel', { detail: outcome });
      },
      (err: Error) => this.internalError(err),
    );
  }

  private recentFailures(): RecentFailures {
    return (this.failures ??= new RecentFailures(this.ctx.health.fastInterval * 4, this.ctx.clock));
  }

  // ---- sockets -----------------------------------------------------------------------------

  /** RelaySocket event: a FIN. Only the client is half-open capable (see Listener). */
  socketEnded(socket: RelaySocket): void {
    if (socket !== this.client) return;
    switch (this.phase) {
      case 'reading-first-packet':
        if (this.reader.pending > 0) {
          return this.end('protocol-error', { error: { sqlstate: SqlState.PROTOCOL_VIOLATION, message: `truncated startup packet: ${this.reader.pending} bytes received before the client closed` } });
        }
        return this.end('client-closed');
      case 'routing':
      case 'connecting':
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

  socketClosed(socket: RelaySocket): void {
    if (this.phase === 'closing') return this.lingerDone();
    if (socket === this.client) return this.end(this.clientCause());
    if (socket === this.backend) this.end(this.clientEnded ? this.clientCause() : 'server-closed', { flush: true });
  }

  socketFailed(socket: RelaySocket, err: NodeJS.ErrnoException): void {
    if (this.phase === 'closing') return; // ECONNRESET/EPIPE while closing is normal
    if (socket === this.client) this.end(causeOfSocketError('client', err), { detail: err.code ?? err.message });
    else if (socket === this.backend) this.end(causeOfSocketError('server', err), { flush: true, detail: err.code ?? err.message });
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
      case 'reading-first-packet':
      case 'routing':
        return this.end('drained', { reason, error: { sqlstate, message } });
      case 'starting':
      case 'relaying': {
        const b = this.boundaries;
        if (this.phase === 'relaying') this.ctx.onClosedByProxy(this.target?.name, reason, this.inTransaction);
        return this.end('drained', { reason, error: b?.server.atBoundary ? { sqlstate, message } : undefined });
      }
      default:
        return;
    }
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
  private end(cause: EndCause, opts: EndOptions = {}): void {
    if (this.phase === 'closing' || this.phase === 'ended') return;
    const from = this.phase;
    this.transition('closing');
    this.reader.dispose();
    this.abort?.abort();
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
    if (opts.error && cause !== 'rejected' && cause !== 'drained' && cause !== 'internal-error' && cause !== 'idle-timeout') {
      this.ctx.onClientError(opts.error.sqlstate, opts.error.message);
    }
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

  private releaseBackend(): void {
    if (this.counted && this.target) this.ctx.topology.sessionClosed(this.target.name);
    this.counted = false;
    this.backend = undefined;
  }

  private report(cause: EndCause, opts: EndOptions, from: Phase): void {
    if (this.key) this.ctx.cancels.delete(this.key);
    const backend = this.target?.name;
    if (this.counted && this.target) this.ctx.topology.sessionClosed(this.target.name);
    this.counted = false;
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

const NOTHING_EXCLUDED: ReadonlySet<string> = new Set();
