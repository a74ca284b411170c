// One client connection, as an explicit phase machine (see session-phase.ts): read the first
// packet, route, make one backend attempt at a time (redispatching on failure), watch the
// startup, then relay both ways with backpressure while following message headers. Every move
// goes through transition(); every phase's timers and listeners are released by the disposer it
// registered (exitPhase); every end goes through end(), with one named cause. This file is the
// path to an established session; session-lifecycle.ts holds the phase, the socket events and
// the teardown.
//
// The pieces: FirstPacketReader (first packets, login timer), startAttempt (connect + first
// answer), tls-negotiation (the server's answer to SSLRequest under passthrough), watchStartup
// (BackendKeyData, first ReadyForQuery, non-PostgreSQL answers), MessageBoundaries (idle,
// transaction, Terminate), forwardCancel (exact or rate-bounded fan-out).
// Under auth.mode proxy, ProxyAuthSession (proxy-auth-session.ts) adds two phases: authenticating
// (pgwarden checks the client's password) and logging-in (pgwarden logs in to the server).
import { cancelKey } from '../protocol/cancel';
import { GSSENC_REQUEST_CODE, SSL_REQUEST_CODE } from '../protocol/constants';
import type { FirstPacket } from '../protocol/first-packet';
import { SqlState, RoutingError, type OutOfDescriptorsError } from '../errors';
import type { BackendView } from '../routing/topology';
import type { RelayEnd } from '../net/relay-socket';
import { startAttempt, type AttemptOutcome } from './backend-attempt';
import { BackendConnectError } from './backend-connect';
import { SSL_REQUEST_BYTES, readSslAnswer } from './tls-negotiation';
import { watchStartup } from './startup-watch';
import { MessageBoundaries } from './boundaries';
import { forwardCancel } from './cancel-forwarder';
import { RecentFailures } from './recent-failures';
import { cannotConnectNow } from './startup-refusal';
import { FirstPacketReader } from './first-packet-reader';
import { RelayTlsSocket, tlsRelayEnd } from '../net/tls-relay';
import { prefixedStream } from '../net/prefixed-stream';
import tls, { TLSSocket } from 'node:tls';
import { SaslPlusFilter } from '../protocol/sasl-plus-filter';
import { ProxyAuthSession, type Purpose, type Redispatchable } from './proxy-auth-session';

export type { CloseReason } from './close-reason';

const NO_BYTES = Buffer.alloc(0);

export class Session extends ProxyAuthSession {
  /** This connection's client already sent an SSLRequest / a GSSENCRequest (one of each is allowed). */
  private sslAsked = false;
  private gssencAsked = false;

  start(): void {
    this.client.setNoDelay(true);
    this.client.reportTo(this);
    this.reader.parse(this.ctx.proxy.clientLoginTimeout);
  }

  protected onFirstPacket(p: FirstPacket): boolean {
    switch (p.kind) {
      case 'incomplete':
        return false;
      case 'invalid':
        this.end('protocol-error', { error: { sqlstate: p.sqlstate, message: p.reason } });
        return false;
      case 'gssenc':
        if (this.gssencAsked) return this.secondNegotiation('GSSENCRequest', GSSENC_REQUEST_CODE);
        this.gssencAsked = true;
        // GSSAPI encryption is not proxied: refuse it, the client continues in plain text or TLS.
        this.client.write('N');
        return true;
      case 'ssl': {
        if (this.clientTls) {
          this.end('protocol-error', { detail: 'SSLRequest inside TLS' });
          return false;
        }
        if (this.sslAsked) return this.secondNegotiation('SSLRequest', SSL_REQUEST_CODE);
        this.sslAsked = true;
        const options = this.ctx.tls.mode === 'terminate' ? this.ctx.clientTlsOptions() : undefined;
        if (options) return this.terminateTls(options, undefined);
        if (this.ctx.tls.mode === 'disable' || this.sslRefused) {
          this.client.write('N');
          return true;
        }
        this.route('ssl');
        return false;
      }
      case 'direct-tls': {
        // A TLS ClientHello cannot be answered with a plain ErrorResponse.
        const options = this.ctx.tls.mode === 'terminate' && !this.clientTls ? this.ctx.clientTlsOptions() : undefined;
        if (options) return this.terminateTls(options, this.reader.take());
        if (this.ctx.tls.mode !== 'passthrough' || this.clientTls) this.end('protocol-error', { detail: `direct TLS with tls.mode ${this.ctx.tls.mode}` });
        else this.route('direct-tls');
        return false;
      }
      case 'cancel':
        this.cancel(p.processId, p.secretKey);
        return false;
      case 'startup':
        if (this.ctx.tls.mode === 'terminate' && this.ctx.tls.client === 'require' && !this.clientTls) {
          const message = 'pgwarden accepts only TLS connections (tls.client: require): connect with sslmode=require or stronger';
          this.end('protocol-error', { error: { sqlstate: SqlState.INVALID_AUTHORIZATION_SPECIFICATION, message } });
          return false;
        }
        this.startupSize = p.size;
        this.user = p.params.user;
        this.database = p.params.database ?? p.params.user;
        // Kept for every later login as this user (auth.mode proxy, and sessions.survive's moves).
        this.startupParams = new Map(Object.entries(p.params));
        if (this.ctx.auth.mode === 'proxy') return this.authenticate(p.params, p.protocolMinor);
        this.proceed('startup');
        return false;
    }
  }

  /** To the backend kept after the server said 'N' to SSLRequest, else through routing. */
  protected proceed(purpose: 'startup' | 'login'): void {
    if (this.backend && this.target) this.connect(this.target, purpose, this.backend);
    else this.route(purpose);
  }

  /**
   * PostgreSQL answers at most one SSLRequest and one GSSENCRequest per connection
   * (ProcessStartupPacket's ssl_done/gss_done); a second one is read as a protocol version it
   * does not support. The same here, so a client cannot keep the session answering 'N' to a
   * stream of requests (8 bytes in, a write out, each) until client_login_timeout.
   */
  private secondNegotiation(what: string, code: number): false {
    const message = `unsupported frontend protocol ${code >>> 16}.${code & 0xffff}: server supports 3.0 to 3.x (a second ${what} on one connection)`;
    this.end('protocol-error', { error: { sqlstate: SqlState.FEATURE_NOT_SUPPORTED, message } });
    return false;
  }

  /**
   * tls.mode terminate: TLS with the client here, with pgwarden's certificate, then the session
   * goes on exactly as in plain text over the TLS socket (first packet, routing, relay), so
   * boundaries, cancel keys and drains work. After an SSLRequest the client waits for 'S' before
   * its ClientHello; with direct TLS (PostgreSQL 17, ALPN postgresql) the ClientHello is already
   * read (`hello`) and is handed to the TLS socket first.
   */
  private terminateTls(options: tls.TlsOptions, hello: Buffer | undefined): boolean {
    if (hello === undefined && this.reader.pending > 0) {
      // A client may not say anything between SSLRequest and the answer.
      this.end('protocol-error', { error: { sqlstate: SqlState.PROTOCOL_VIOLATION, message: 'received unencrypted data after SSL request' } });
      return false;
    }
    this.reader.dispose();
    const raw = this.client;
    if (hello === undefined) raw.write('S');
    const socket = new RelayTlsSocket(hello === undefined ? raw : prefixedStream(raw, hello), options);
    socket.once('secure', () =>
      this.guard(() => {
        const refused = this.ctx.clientCertificateError(socket);
        const message = refused && `pgwarden refuses the client certificate (tls.client_cert: verify): ${refused.message}`;
        if (message) this.end('protocol-error', { error: { sqlstate: SqlState.INVALID_AUTHORIZATION_SPECIFICATION, message }, detail: message });
      }, undefined),
    );
    const secure = tlsRelayEnd(socket);
    this.client = secure;
    this.clientTls = true;
    secure.reportTo(this);
    this.reader = new FirstPacketReader(secure, this.ctx.clock, this);
    this.reader.parse(this.ctx.proxy.clientLoginTimeout);
    return false;
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
      (view) =>
        this.guard(() => {
          // The router took a startup slot on `view` for this session: it is released once, when
          // the startup ends one way or another (releaseSlot).
          if (this.phase !== 'routing') return this.ctx.startups.release(view.name);
          this.slot = view.name;
          this.connect(view, purpose);
        }, undefined),
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

  private connect(view: BackendView, purpose: Purpose, open?: RelayEnd): void {
    this.transition('connecting');
    this.reader.hold();
    this.target = view;
    // Everything the client sent so far goes to the server (the StartupMessage and anything
    // pipelined after it, or the start of a TLS ClientHello); SSLRequest is pgwarden's own copy.
    // A login (auth.mode proxy) speaks for itself once connected (logIn).
    const firstBytes = purpose === 'ssl' ? SSL_REQUEST_BYTES : purpose === 'login' ? NO_BYTES : this.reader.take();
    const { proxy, health } = this.ctx;
    const attempt = startAttempt(
      {
        view,
        socket: open,
        firstBytes,
        awaitAnswer: purpose !== 'direct-tls' && purpose !== 'login',
        // pgwarden speaks the startup itself: its own TLS to the server when tls.server asks.
        serverTls: purpose === 'startup' || purpose === 'login' ? this.ctx.serverTlsOptions(view.config.host) : undefined,
      },
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
    if (!outcome.ok) return 'local' in outcome ? this.outOfDescriptors(view, outcome.local) : this.redispatch(view, purpose, firstBytes, outcome);
    if (purpose === 'login') return this.logIn(view, outcome.socket);
    const refusal = purpose === 'startup' ? cannotConnectNow(outcome.answer!) : undefined;
    if (refusal !== undefined) {
      // 57P03 before authentication: the client has seen nothing, so this is a refused connect.
      outcome.socket.destroy();
      const error = new BackendConnectError('L7QUERY', `${view.name} refused the session with 57P03: ${refusal}`);
      return this.redispatch(view, purpose, firstBytes, { ok: false, error });
    }
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
        this.reader.parse(this.ctx.proxy.clientLoginTimeout);
        return;
      case 'invalid':
        this.serverNotPostgres(view, `answered SSLRequest with 0x${answer[0].toString(16)}`, true);
    }
  }

  /** The attempt failed before the server said anything: try the next candidate. */
  protected redispatch(view: BackendView, purpose: Purpose, firstBytes: Buffer, outcome: Redispatchable): void {
    this.releaseBackend();
    this.releaseSlot();
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

  /**
   * pgwarden has no descriptor for the server connection: every candidate would fail the same
   * way, and retrying at once would spin. The client is refused with 53000 and closed, which
   * frees its own descriptor; the checker is not asked to look (the server is fine).
   */
  private outOfDescriptors(view: BackendView, err: OutOfDescriptorsError): void {
    this.releaseBackend();
    this.ctx.onOutOfDescriptors(`connect to ${view.name}`, err.errno);
    this.ctx.onClientError(err.sqlstate, err.message, err.code);
    this.end('rejected', { error: { sqlstate: err.sqlstate, message: err.message }, detail: err.code });
  }

  /** The server's first startup answer is in: it flows to the client until ReadyForQuery. */
  private beginStarting(answer: Buffer, pipelined: Buffer): void {
    this.transition('starting');
    const backend = this.backend!;
    const w = this.watchers((this.boundaries = new MessageBoundaries()), answer);
    w.client.feed(pipelined);
    // The client waited for the server's first answer before saying more, so it stayed on the
    // reader until now: a redispatch lost nothing. From here client→server is a relay
    // (anything the client sent meanwhile goes first).
    const early = this.reader.take();
    this.reader.dispose();
    if (early.length > 0) {
      backend.write(early);
      w.client.feed(early);
    }
    this.client.relayTo(backend, w.client);
    this.exitPhase = watchStartup(backend, this.client, w.server, answer, {
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
          this.releaseSlot();
          this.relayServer(backend);
          this.ctx.onSessionStart(this.target!.name);
        }, undefined),
      malformed: (reason, forwarded, atBoundary) =>
        this.guard(() => this.serverNotPostgres(this.target!, reason, forwarded === 0 || atBoundary), undefined),
    }, backend instanceof TLSSocket ? new SaslPlusFilter() : undefined);
  }

  /** TLS passthrough: opaque bytes both ways; the cancel key stays unknown (encrypted). */
  private relayOpaque(): void {
    this.transition('relaying');
    // Opaque from here (TLS passthrough): the end of the startup cannot be seen, so its slot
    // is given back now.
    this.releaseSlot();
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
}

const NOTHING_EXCLUDED: ReadonlySet<string> = new Set();
