// One backend attempt of a session: connect (unless the socket is already open, as after an
// SSL 'N'), send the first bytes, and wait for the server's first answer. The attempt owns its
// timers and its socket's listeners until it settles, and startAttempt() returns the disposer
// that frees them on every other exit (the client went away, pgwarden closed the backend).
//
// Until the server answers nothing from it has reached the client, so a failure here is never
// the client's problem: the session records it and tries the next candidate (redispatch).
//
// Silence has two causes. A stopped or wedged server accepts in the kernel and then says
// nothing; a busy one is forking and starting thousands of backends (a connection storm, the
// burst of reconnects after a failover) and answers late. So after connect_timeout of silence
// the server's checker is asked to look now (onSlowAnswer) — a hung server is marked down within
// its fall count, which abandons this attempt — and the attempt keeps waiting until
// startup_timeout. Giving up at connect_timeout would close a connection the busy server has
// already forked a backend for and connect again: more work for the server that is behind.
import type { Clock } from '../clock';
import type { BackendView } from '../routing/topology';
import type { RelayEnd, SocketOwner } from '../net/relay-socket';
import { connectBackend, BackendConnectError } from './backend-connect';
import { OutOfDescriptorsError } from '../errors';
import type { CloseReason } from './close-reason';
import type { ServerTlsOptions } from './listener-context';
import { SSL_REQUEST_BYTES, readSslAnswer } from './tls-negotiation';
import { tlsRelayEnd } from '../net/tls-relay';
import tls from 'node:tls';

export interface AttemptSettings {
  readonly clock: Clock;
  readonly connectTimeoutMs: number;
  readonly startupTimeoutMs: number;
  /** TCP_USER_TIMEOUT of the server socket. */
  readonly userTimeoutMs: number;
}

export interface AttemptRequest {
  readonly view: BackendView;
  /** An open socket to `view` (after an SSL 'N'); absent: connect first. */
  readonly socket?: RelayEnd;
  /** What to send once connected (SSLRequest, the StartupMessage, a TLS ClientHello). */
  readonly firstBytes: Buffer;
  /** false: settle as soon as the bytes are sent (direct TLS, whose ClientHello may still be arriving). */
  readonly awaitAnswer: boolean;
  /** TLS to the server first (tls.server): SSLRequest, 'S', a handshake, then `firstBytes` inside it. */
  readonly serverTls?: ServerTlsOptions;
}

export type AttemptOutcome =
  | { readonly ok: true; readonly socket: RelayEnd; readonly answer?: Buffer }
  | { readonly ok: false; readonly error: BackendConnectError }
  | { readonly ok: false; readonly closedBy: CloseReason }
  /** pgwarden had no file descriptor for the connection: nothing is wrong with the server. */
  | { readonly ok: false; readonly local: OutOfDescriptorsError };

export interface AttemptEvents {
  /** TCP is up (before any answer): the session counts it on the backend from here. */
  connected(socket: RelayEnd): void;
  /** Silent for connect_timeout: the checker should look now. */
  slowAnswer(ms: number): void;
  /** Called once, unless the attempt was disposed first. */
  settled(outcome: AttemptOutcome): void;
}

export interface Attempt {
  /** pgwarden closes this backend (down, maint …): the attempt settles with `closedBy`. */
  abandon(reason: CloseReason): void;
  /** Free everything without settling; destroys the socket unless it was handed over. Idempotent. */
  dispose(): void;
}

export function startAttempt(req: AttemptRequest, s: AttemptSettings, events: AttemptEvents): Attempt {
  const { host, port } = req.view.config;
  let socket: RelayEnd | undefined;
  let timer: { clear(): void } | undefined;
  let done = false;

  const release = (handOver: boolean) => {
    done = true;
    timer?.clear();
    timer = undefined;
    if (!socket) return;
    socket.off('data', onAnswer);
    if (!handOver) {
      socket.holdErrors();
      socket.destroy();
    }
  };
  const settle = (outcome: AttemptOutcome) => {
    if (done) return;
    release(outcome.ok);
    events.settled(outcome);
  };
  const fail = (layer: 'L4CON' | 'L7TOUT' | 'L6TLS' | 'L7RSP', what: string) => settle({ ok: false, error: new BackendConnectError(layer, `${host}:${port} ${what}`) });

  // The socket's 'close' and 'error' come here until the session takes the socket over.
  const owner: SocketOwner = {
    socketEnded: () => undefined, // a server socket is not half-open: its 'close' follows
    socketClosed: () => fail('L4CON', 'closed the connection before answering'),
    socketFailed: () => fail('L4CON', 'reset the connection before answering'),
  };
  const onAnswer = (chunk: Buffer) => {
    socket!.pause(); // the session resumes reads once its own listeners are in place
    settle({ ok: true, socket: socket!, answer: chunk });
  };

  const armAnswerTimer = () => {
    const { connectTimeoutMs, startupTimeoutMs } = s;
    const giveUp = () => fail('L7TOUT', `accepted the connection but did not answer within ${startupTimeoutMs} ms`);
    timer = s.clock.setTimeout(() => {
      if (startupTimeoutMs <= connectTimeoutMs) return giveUp();
      events.slowAnswer(connectTimeoutMs);
      if (done) return; // the checker's look may have abandoned the attempt synchronously
      timer = s.clock.setTimeout(giveUp, startupTimeoutMs - connectTimeoutMs);
    }, Math.min(connectTimeoutMs, startupTimeoutMs));
  };

  const send = (open: RelayEnd) => {
    socket = open;
    open.reportTo(owner);
    if (!req.socket) events.connected(open);
    if (done) return;
    if (req.serverTls && !req.socket) return negotiateTls(open, req.serverTls);
    startup(open);
  };
  const startup = (open: RelayEnd) => {
    if (req.firstBytes.length > 0) open.write(req.firstBytes);
    if (!req.awaitAnswer) return settle({ ok: true, socket: open });
    open.on('data', onAnswer);
    open.resume();
    if (!timer) armAnswerTimer();
  };

  // tls.server: SSLRequest, the server's one-byte answer, the handshake (Node verifies the
  // certificate per the options), and the startup inside TLS. The answer timer covers it all.
  const negotiateTls = (open: RelayEnd, options: ServerTlsOptions) => {
    const onSslAnswer = (chunk: Buffer) => {
      open.off('data', onSslAnswer);
      open.pause();
      const answer = readSslAnswer(chunk);
      if (answer === 'refused' && options.fallbackToPlain) return startup(open);
      if (answer === 'refused') return fail('L6TLS', 'refused TLS (answered N to SSLRequest) and tls.server requires it');
      if (answer === 'invalid' || chunk.length > 1) return fail('L7RSP', `answered SSLRequest with 0x${chunk[0]!.toString(16)}`);
      const secure = tls.connect({ ...options.connect, socket: open });
      // Stays until the session owns the socket: a second error after a failure is swallowed.
      const onTlsError = (err: Error) => fail('L6TLS', `TLS handshake failed: ${err.message}`);
      secure.on('error', onTlsError);
      secure.once('secureConnect', () => {
        if (done) return void secure.destroy();
        secure.off('error', onTlsError);
        const end = tlsRelayEnd(secure);
        socket = end;
        end.reportTo(owner);
        startup(end);
      });
    };
    open.on('data', onSslAnswer);
    open.write(SSL_REQUEST_BYTES);
    open.resume();
    armAnswerTimer();
  };

  if (req.socket) send(req.socket);
  else {
    connectBackend(host, port, s.connectTimeoutMs, s.userTimeoutMs, s.clock).then(
      (open) => {
        if (done) {
          open.destroy();
          return;
        }
        send(open);
      },
      (err: BackendConnectError | OutOfDescriptorsError) => settle(err instanceof OutOfDescriptorsError ? { ok: false, local: err } : { ok: false, error: err }),
    );
  }

  return {
    abandon: (reason) => settle({ ok: false, closedBy: reason }),
    dispose: () => {
      if (!done) release(false);
    },
  };
}
