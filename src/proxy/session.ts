// One client connection. Reads only the first packet(s) — bounded in size and time — decides
// where the session goes, connects, forwards the startup bytes and then becomes a pipe with
// backpressure both ways. The backend→client stream is parsed only until the first
// ReadyForQuery (to learn BackendKeyData for cancels); after that only the 5-byte message
// headers of each direction are followed (FrameTracker), so pgwarden can close a session at a
// message or transaction boundary.
import { readFirstPacket, MAX_STARTUP_PACKET, type FirstPacket } from '../protocol/first-packet';
import { errorResponse } from '../protocol/error-response';
import { cancelKey, cancelRequest } from '../protocol/cancel';
import { StartupWatcher } from '../protocol/startup-watcher';
import { connectBackend, BackendConnectError } from './backend-connect';
import { RoutingError } from '../routing/routing-error';
import type { BackendView } from '../routing/topology';
import type { ListenerContext } from './listener-context';
import { RecentFailures } from './recent-failures';
import { FrameTracker } from '../protocol/frame-tracker';
import type { RelaySocket, SocketOwner } from '../net/relay-socket';
import type { CloseReason } from './close-reason';

/** Why a session drops a backend that has not answered: the server failed, or pgwarden closed it. */
type GiveUpCause = { layer: 'L4CON' | 'L7TOUT'; what: string } | { closedBy: CloseReason };

type Phase = 'reading' | 'routing' | 'startup' | 'piping' | 'closed';

export class Session implements SocketOwner {
  private phase: Phase = 'reading';
  private buffered: Buffer = NO_BYTES;
  private backend?: RelaySocket;
  private target?: BackendView;
  private key?: string;
  private readonly started = Date.now();
  /** Created when the session starts routing (most sessions never wait, none wait twice). */
  private abort?: AbortController;
  private loginTimer?: NodeJS.Timeout;
  private failures?: RecentFailures;
  /** The chosen backend has sent its first byte (an answer to SSLRequest or StartupMessage). */
  private answered = false;
  private routeDeadline?: number;
  /** Set when the SSLRequest was already answered by the backend we are connected to. */
  private sslNegotiated = false;
  private user?: string;
  private database?: string;
  private readonly clientAddress: string;
  private startupSize = 0;
  /** Message boundaries of both directions (absent under TLS passthrough: opaque bytes). */
  private serverFrames?: FrameTracker;
  private clientFrames?: FrameTracker;
  /** The client's 'data' listener while pgwarden reads the first packets itself. */
  private clientDataListener?: (chunk: Buffer) => void;

  constructor(
    readonly client: RelaySocket,
    private readonly ctx: ListenerContext,
    private readonly onClose: (s: Session) => void,
  ) {
    this.clientAddress = `${client.remoteAddress}:${client.remotePort}`;
  }

  start(): void {
    const c = this.client;
    c.setNoDelay(true);
    c.reportTo(this);
    c.on('data', (this.clientDataListener = (chunk: Buffer) => this.clientData(chunk)));
    this.armLoginTimer();
  }

  /** From here on the client's bytes are relayed: the startup reader lets go. */
  private stopReadingClient(): void {
    if (this.clientDataListener) this.client.off('data', this.clientDataListener);
    this.clientDataListener = undefined;
  }

  /** RelaySocket event. The client socket is half-open capable (see Listener) for this. */
  socketEnded(socket: RelaySocket): void {
    if (socket !== this.client) return; // a backend's end is followed by its close
    if (this.phase === 'reading' && this.buffered.length > 0) {
      this.fail('08P01', `truncated startup packet: ${this.buffered.length} bytes received before the client closed`);
    } else this.close();
  }

  /** RelaySocket event: until the backend has answered, its hang-up means "try the next one". */
  socketClosed(socket: RelaySocket): void {
    if (socket === this.client) this.close();
    else if (socket === this.backend) {
      if (this.answered || !this.giveUp) this.closeAfterFlush();
      else this.giveUp({ layer: 'L4CON', what: 'closed the connection before answering' });
    }
  }

  /** RelaySocket event (every 'error' of a session socket comes here). */
  socketFailed(socket: RelaySocket): void {
    if (socket === this.backend && !this.answered && this.giveUp) this.giveUp({ layer: 'L4CON', what: 'reset the connection before answering' });
    else if (socket === this.client || socket === this.backend) this.close();
  }

  /** The client must send its (next) first packet within client_login_timeout. */
  private armLoginTimer(): void {
    this.clearLoginTimer();
    this.loginTimer = setTimeout(
      () => this.fail('08P01', `no startup packet within client_login_timeout (${this.ctx.proxy.clientLoginTimeout} ms)`),
      this.ctx.proxy.clientLoginTimeout,
    );
    this.loginTimer.unref();
  }

  get backendName(): string | undefined {
    return this.target?.name;
  }

  /** A method, not a narrowed field read: the phase changes across awaits. */
  private get isClosed(): boolean {
    return this.phase === 'closed';
  }

  get isEstablished(): boolean {
    return this.phase === 'piping';
  }

  private clientData(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    if (this.phase === 'reading') this.processBuffered();
    // While routing, the client should be silent; keep reading (so a disconnect is noticed at
    // once) but never hold more than one startup packet's worth.
    else if (this.buffered.length > MAX_STARTUP_PACKET) this.fail('08P01', 'client sent data before the server answered');
  }

  private processBuffered(): void {
    while (this.phase === 'reading' && this.buffered.length > 0) {
      const packet = readFirstPacket(this.buffered);
      if (packet.kind === 'incomplete') {
        if (this.buffered.length > MAX_STARTUP_PACKET) this.fail('08P01', 'startup packet too large');
        return;
      }
      if (!this.handle(packet)) return;
    }
  }

  /** Returns true when the loop may read the next packet from the buffer. */
  private handle(p: FirstPacket): boolean {
    switch (p.kind) {
      case 'incomplete':
        return false;
      case 'invalid':
        this.fail(p.sqlstate, p.reason);
        return false;
      case 'gssenc':
        // GSSAPI encryption is not proxied: refuse it, the client continues in plain text or TLS.
        this.buffered = this.buffered.subarray(p.size);
        this.client.write('N');
        return true;
      case 'ssl':
        this.buffered = this.buffered.subarray(p.size);
        if (this.ctx.tls.mode === 'disable' || this.sslNegotiated) {
          this.client.write('N');
          return true;
        }
        void this.routeThen((b) => this.negotiateSsl(b));
        return false;
      case 'direct-tls':
        if (this.ctx.tls.mode === 'disable') {
          this.close(); // cannot answer a TLS ClientHello with a plain ErrorResponse
          return false;
        }
        void this.routeThen((b) => this.pipeRaw(b, this.takeBuffered()));
        return false;
      case 'cancel':
        this.buffered = this.buffered.subarray(p.size);
        void this.forwardCancel(p.processId, p.secretKey);
        return false;
      case 'startup':
        this.startupSize = p.size;
        this.user = p.params.user;
        this.database = p.params.database ?? p.params.user;
        if (this.backend) this.beginStartup(this.backend);
        else void this.routeThen((b) => this.beginStartup(b));
        return false;
    }
  }

  /** Find a backend (waiting in the queue if needed), connect, retry on the next candidate. */
  private async routeThen(next: (backend: RelaySocket) => void): Promise<void> {
    this.phase = 'routing';
    // The first packet is in: from here queue_timeout governs the wait, not client_login_timeout.
    this.clearLoginTimer();
    const waitSignal = () => (this.abort ??= new AbortController()).signal;
    const excluded = () => this.failures?.active() ?? NOTHING_EXCLUDED;
    // One deadline for the whole session: a redispatch after a silent or dying server does not
    // restart the queue_timeout clock.
    const deadline = (this.routeDeadline ??= Date.now() + this.ctx.failover.queueTimeout);
    for (;;) {
      let view: BackendView;
      try {
        view = await this.ctx.router.acquire(excluded, deadline, waitSignal);
      } catch (e) {
        if (e instanceof RoutingError) {
          this.ctx.onRejected(e);
          if (e.code !== 'PGW_CLIENT_GONE') this.fail(e.sqlstate, e.message, 'FATAL');
        } else this.fail('XX000', `internal error while routing: ${(e as Error).message}`, 'FATAL');
        return;
      }
      if (this.isClosed) return;
      const { host, port } = view.config;
      try {
        const socket = await connectBackend(host, port, this.ctx.proxy.connectTimeout, this.ctx.health.timeout * this.ctx.health.fall);
        if (this.isClosed) {
          socket.destroy();
          return;
        }
        this.attach(view, socket);
        next(socket);
        return;
      } catch (e) {
        if (this.isClosed) return;
        const err = e as BackendConnectError;
        this.recentFailures().add(view.name);
        this.ctx.onConnectFailure(view.name, err);
        // loop: the next candidate (redispatch) or the queue, within the same deadline
      }
    }
  }

  /** Backends this session failed to reach lately (created at the first failure: most never fail). */
  private recentFailures(): RecentFailures {
    return (this.failures ??= new RecentFailures(this.ctx.health.fastInterval * 4));
  }

  private attach(view: BackendView, socket: RelaySocket): void {
    this.target = view;
    this.backend = socket;
    this.answered = false;
    this.ctx.topology.sessionOpened(view.name);
    socket.reportTo(this);
  }

  /** Set while the chosen backend has not answered yet: drop it and try the next candidate. */
  private giveUp?: (cause: GiveUpCause) => void;

  /**
   * A server that accepted the TCP connection must also answer what we sent (SSLRequest or
   * StartupMessage): within startup_timeout and without hanging up first (a server dying under
   * us). Until it answers, nothing from it has reached the client, so the session moves on to
   * the next candidate — the same redispatch as a refused connect.
   *
   * Silence has two causes. A stopped or wedged server accepts in the kernel and then says
   * nothing; a busy one is forking and starting thousands of backends (a connection storm, the
   * burst of reconnects after a failover) and answers late. So after connect_timeout of silence
   * the server's checker is asked to look now — a hung server is marked down within its fall
   * count, and that redispatches this session (closeAtBoundary) — and the session keeps waiting
   * until startup_timeout. Giving up at connect_timeout would close a connection the busy server
   * has already forked a backend for and connect again: more work for the server that is behind.
   */
  private armAnswerTimer(backend: RelaySocket, resend: Buffer, then: (b: RelaySocket) => void, onGiveUp?: () => void): void {
    const giveUp = (cause: GiveUpCause) => {
      clearTimeout(timer);
      this.giveUp = undefined;
      if (this.backend !== backend || this.isClosed) return;
      const view = this.target!;
      onGiveUp?.();
      backend.removeAllListeners();
      backend.holdErrors();
      backend.destroy();
      this.ctx.topology.sessionClosed(view.name);
      this.backend = undefined;
      this.target = undefined;
      // A server that failed is skipped for a while; one pgwarden closed is already out of the
      // router's candidates (down, maint, fenced, demoted) or, after a reload that moved it,
      // worth trying at once at its new address.
      if ('closedBy' in cause) this.ctx.onRedispatch(view.name, cause.closedBy);
      else {
        this.recentFailures().add(view.name);
        this.ctx.onConnectFailure(view.name, new BackendConnectError(cause.layer, `${view.config.host}:${view.config.port} ${cause.what}`));
      }
      this.buffered = Buffer.concat([resend, this.buffered]);
      void this.routeThen(then);
    };
    const { connectTimeout, startupTimeout } = this.ctx.proxy;
    const giveUpSilent = () => giveUp({ layer: 'L7TOUT', what: `accepted the connection but did not answer within ${startupTimeout} ms` });
    let timer = setTimeout(() => {
      if (startupTimeout <= connectTimeout) return giveUpSilent();
      if (this.backend !== backend || this.isClosed) return;
      this.ctx.onSlowAnswer(this.target!.name, connectTimeout);
      timer = setTimeout(giveUpSilent, startupTimeout - connectTimeout);
      timer.unref();
    }, Math.min(connectTimeout, startupTimeout));
    timer.unref();
    this.giveUp = giveUp;
    backend.once('data', () => {
      this.answered = true;
      this.giveUp = undefined;
      clearTimeout(timer);
    });
  }

  private negotiateSsl(backend: RelaySocket): void {
    const onAnswer = (chunk: Buffer) => {
      backend.off('data', onAnswer);
      backend.pause();
      const answer = chunk[0];
      if (answer === 0x53 /* 'S' */) {
        // End-to-end TLS between client and server: from here on the bytes are opaque (anything
        // after the 'S' in the same chunk is already the server's TLS and goes along).
        this.client.write(chunk);
        this.pipeRaw(backend, this.takeBuffered());
      } else if (answer === 0x4e /* 'N' */) {
        // Server has no TLS: tell the client, keep this backend and read its StartupMessage.
        this.sslNegotiated = true;
        this.client.write(chunk.subarray(0, 1));
        this.phase = 'reading';
        this.armLoginTimer();
        this.processBuffered();
      } else {
        this.fail('08P01', `backend ${this.target?.name} sent an unexpected answer to SSLRequest`, 'FATAL');
      }
    };
    backend.on('data', onAnswer);
    backend.write(sslRequestBytes);
    this.armAnswerTimer(backend, NO_BYTES, (b) => this.negotiateSsl(b));
  }

  private beginStartup(backend: RelaySocket): void {
    this.clearLoginTimer();
    this.phase = 'startup';
    // After an SSL 'N' the server has answered once already; what counts now is the startup.
    this.answered = false;
    const watcher = new StartupWatcher({
      onBackendKeyData: (pid, secret) => {
        this.key = cancelKey(pid, secret);
        this.ctx.cancels.add(this.key, { backend: this.target!.name, host: this.target!.config.host, port: this.target!.config.port });
      },
      onReadyForQuery: () => undefined,
      onError: () => undefined,
    });
    const server = (this.serverFrames = new FrameTracker('server'));
    const client = (this.clientFrames = new FrameTracker('client'));
    const onDrain = () => backend.resume();
    const onData = (chunk: Buffer) => {
      watcher.feed(chunk);
      server.feed(chunk);
      if (!this.client.write(chunk)) backend.pause();
      if (watcher.done) {
        // Startup finished: from the next byte on the server→client direction is a plain pipe.
        // The frame trackers keep reading 5-byte headers beside it (no copies, no parsing of
        // bodies) so a drain or switchover can close at a message or transaction boundary.
        backend.off('data', onData);
        this.client.off('drain', onDrain);
        this.phase = 'piping';
        backend.relayTo(this.client, server);
        this.ctx.onSessionStart(this.target!.name);
      }
    };
    this.client.on('drain', onDrain);
    backend.on('data', onData);
    backend.resume();
    const pending = this.takeBuffered();
    backend.write(pending);
    client.feed(pending.subarray(this.startupSize));
    // After an SSL 'N' the client is in plain text: a redispatch skips straight to the startup.
    this.armAnswerTimer(backend, pending, (b) => this.beginStartup(b), () => this.client.off('drain', onDrain));
    // The client waits for the server's first answer before it says more, so it stays on the
    // buffering reader until then: a redispatch to another server loses nothing. From the first
    // answer on, client→server is a relay (anything buffered meanwhile goes first).
    backend.once('data', () => {
      this.stopReadingClient();
      const early = this.takeBuffered();
      if (early.length > 0) {
        backend.write(early);
        client.feed(early);
      }
      this.client.relayTo(backend, client);
    });
  }

  /**
   * Between transactions with nothing in flight: both directions at a message boundary, the
   * last ReadyForQuery said 'I', and every request the client sent has been answered (the
   * startup itself is answered by the first ReadyForQuery).
   */
  get isIdle(): boolean {
    const s = this.serverFrames;
    const c = this.clientFrames;
    if (!s || !c || this.phase !== 'piping') return false;
    return s.atBoundary && c.atBoundary && s.status === 0x49 && s.count === c.count + 1;
  }

  /**
   * While idle: the number of ReadyForQuery seen so far, so a poller can tell "idle since my
   * last look" (same mark) from "busy in between" (a new mark). undefined while busy.
   */
  get idleMark(): number | undefined {
    return this.isIdle ? this.serverFrames!.count : undefined;
  }

  /** In a transaction (or a failed one) per the last ReadyForQuery. */
  get inTransaction(): boolean {
    return this.serverFrames !== undefined && this.serverFrames.status !== 0x49;
  }

  /**
   * Close now. When the server→client stream is at a message boundary the client gets a FATAL
   * ErrorResponse saying why (drivers show it and reconnect); otherwise a plain close, since
   * bytes injected mid-message would corrupt the stream.
   */
  closeAtBoundary(sqlstate: string, message: string, reason: CloseReason): void {
    if (this.phase === 'reading' || this.phase === 'routing') return this.fail(sqlstate, message);
    // A server that has not answered yet (giveUp is set only until it does) has sent the client
    // nothing: the session can still go to another server, or wait in the queue for one.
    if (this.giveUp && reason !== 'shutdown') {
      return this.giveUp({ closedBy: reason });
    }
    if (this.phase !== 'piping') return this.answered ? this.close() : this.fail(sqlstate, message);
    const backend = this.backend!;
    backend.removeAllListeners('data');
    backend.destroy();
    this.ctx.onClosedByProxy(this.target?.name, reason, this.inTransaction);
    this.phase = 'closed';
    if (this.serverFrames?.atBoundary && this.client.writable) {
      this.client.end(errorResponse({ severity: 'FATAL', code: sqlstate, message }));
      setTimeout(() => this.client.destroy(), 1000).unref();
    } else this.client.destroy();
    this.finish();
  }

  /** TLS passthrough: opaque bytes both ways. The cancel key stays unknown (encrypted). */
  private pipeRaw(backend: RelaySocket, pending: Buffer): void {
    this.clearLoginTimer();
    this.phase = 'piping';
    // The client speaks TLS from here: an ErrorResponse from pgwarden would corrupt its stream.
    this.answered = true;
    this.ctx.onSessionStart(this.target!.name);
    if (pending.length > 0) backend.write(pending);
    this.stopReadingClient();
    this.client.relayTo(backend);
    backend.relayTo(this.client);
  }

  private async forwardCancel(processId: number, secretKey: number): Promise<void> {
    this.clearLoginTimer();
    this.phase = 'routing';
    const packet = cancelRequest(processId, secretKey);
    const known = this.ctx.cancels.get(cancelKey(processId, secretKey));
    const targets = known ? [known] : this.ctx.cancelTargets();
    await Promise.all(targets.map((t) => this.ctx.sendCancel(t.host, t.port, packet)));
    this.close();
  }

  private takeBuffered(): Buffer {
    const b = this.buffered;
    this.buffered = NO_BYTES;
    return b;
  }

  /** Send an ErrorResponse (when nothing else was sent to the client yet) and close. */
  private fail(sqlstate: string, message: string, severity: 'FATAL' | 'ERROR' = 'FATAL'): void {
    if (this.phase === 'closed') return;
    this.ctx.onClientError(sqlstate, message);
    const c = this.client;
    if (!c.destroyed && c.writable) c.end(errorResponse({ severity, code: sqlstate, message }));
    this.phase = 'closed';
    this.backend?.destroy();
    this.finish();
    // Give the error a moment to flush, then make sure the socket is gone.
    setTimeout(() => c.destroy(), 1000).unref();
  }

  /** The backend closed: flush what it sent to the client, then close the client. */
  private closeAfterFlush(): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    this.client.end();
    setTimeout(() => this.client.destroy(), 1000).unref();
    this.finish();
  }

  /** The client went away (or a socket failed): let the backend see a clean FIN, then drop it. */
  close(): void {
    if (this.phase === 'closed' && this.finished) return;
    this.phase = 'closed';
    this.client.destroy();
    const b = this.backend;
    if (b && !b.destroyed) {
      b.end();
      setTimeout(() => b.destroy(), 1000).unref();
    }
    this.finish();
  }

  private finished = false;
  private finish(): void {
    this.abort?.abort();
    this.clearLoginTimer();
    if (this.finished) return;
    this.finished = true;
    if (this.key) this.ctx.cancels.delete(this.key);
    if (this.target && this.backend) this.ctx.topology.sessionClosed(this.target.name);
    this.onClose(this);
    this.ctx.onSessionEnd({
      backend: this.target?.name,
      client: this.clientAddress,
      user: this.user,
      database: this.database,
      durationMs: Date.now() - this.started,
      bytesFromClient: this.client.bytesRead,
      bytesToClient: this.client.bytesWritten,
    });
  }

  private clearLoginTimer(): void {
    if (this.loginTimer) clearTimeout(this.loginTimer);
    this.loginTimer = undefined;
  }
}

const NOTHING_EXCLUDED: ReadonlySet<string> = new Set();

/** One empty buffer for every session with nothing buffered (most of them, for their whole life). */
const NO_BYTES = Buffer.alloc(0);

/** SSLRequest: Int32 8, Int32 80877103 (protocol docs, "Message Formats"). */
const sslRequestBytes = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
