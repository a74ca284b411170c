// Everything a Session needs from the rest of the proxy, as one narrow interface: the session
// stays testable and never reaches into the App.
import type { AuthConfig, FailoverConfig, HealthConfig, ListenerConfig, ProxyConfig, TlsConfig } from '../config/types';
import type { Lookup } from './auth-lookup';
import type { ErrorCode, RoutingError } from '../errors';
import type { Router } from '../routing/router';
import type { StartupSlots } from '../routing/startup-slots';
import type { Topology } from '../routing/topology';
import type { BackendConnectError } from './backend-connect';
import type { CancelRegistry, CancelTarget } from './cancel-registry';
import type { CloseReason } from './close-reason';
import type { CancelOutcome, FanoutBudget, ListenerPeers } from './cancel-forwarder';
import type { EndCause } from './end-cause';
import type { Phase } from './session-phase';
import type { Clock } from '../clock';
import type { SurviveKit } from '../survive/survive-kit';
import type tls from 'node:tls';

/** How a session's server leg does TLS: the options for tls.connect, and whether plain TCP is fine when the server refuses (prefer). */
export interface ServerTlsOptions {
  readonly connect: tls.ConnectionOptions;
  readonly fallbackToPlain: boolean;
}

export interface SessionEnd {
  backend?: string;
  client: string;
  user?: string;
  database?: string;
  /** Why the session ended (one cause per session). */
  cause: EndCause;
  /** For cause `drained`: why pgwarden closed it. */
  reason?: CloseReason;
  /** The error sent to the client, the socket error code … */
  detail?: string;
  /** The phase the session was in when it began to end. */
  phase: Phase;
  durationMs: number;
  bytesFromClient: number;
  bytesToClient: number;
}

/** A session moved to a new server (sessions.survive): logged as session.moved and counted. */
export interface SessionMoved {
  readonly client: string;
  readonly user?: string;
  readonly database?: string;
  readonly from: string;
  readonly to: string;
  /** What made it move: a CloseReason (down, fenced, switchover …) or `server-gone`. */
  readonly trigger: string;
  /** How long the client's bytes waited. */
  readonly pauseMs: number;
  /** For `server-gone`: the server's goodbye (SQLSTATE and message), when it sent one before closing. */
  readonly serverSaid?: string;
}

/** A session that could have moved but did not (sessions.survive): logged as session.not_moved with the reason. */
export interface SessionNotMoved {
  readonly client: string;
  readonly user?: string;
  readonly database?: string;
  readonly from?: string;
  readonly trigger: string;
  readonly reason: string;
}

export interface ListenerContext {
  /** Replaced by a reload that changes this listener in place. */
  listener: ListenerConfig;
  readonly router: Router;
  /** Startups in flight per server, shared by every listener; the router takes a slot, the session releases it. */
  readonly startups: StartupSlots;
  readonly topology: Topology;
  readonly cancels: CancelRegistry;
  readonly tls: TlsConfig;
  /**
   * tls.mode terminate: the options of the client-facing TLS socket (a reload that re-read the
   * certificate gives new ones to the next session); undefined: not terminating.
   */
  clientTlsOptions(): tls.TlsOptions | undefined;
  /** TLS to the server at `host` (tls.server, like libpq's sslmode); undefined: plain TCP. */
  serverTlsOptions(host: string): ServerTlsOptions | undefined;
  /**
   * Under client_cert: verify, why the client's certificate is refused (after the TLS socket's
   * 'secure'; a TLSSocket made outside a tls.Server does not check it itself); undefined: fine.
   */
  clientCertificateError(socket: tls.TLSSocket): Error | undefined;
  readonly proxy: ProxyConfig;
  /** auth.mode: who checks a client's password (a reload applies to the next session). */
  readonly auth: AuthConfig;
  /** auth.mode proxy: what the servers store for `user` (auth.query, cached briefly); rejects with AuthLookupError. */
  lookupSecret(user: string): Promise<Lookup>;
  /** A per-process secret from which unknown users' fake SCRAM salts are made (the same salt per name). */
  readonly authMockKey: Buffer;
  readonly failover: FailoverConfig;
  readonly health: HealthConfig;
  /** Time for every session timer (login, answer, linger) and for the queue deadline. */
  readonly clock: Clock;
  /** Phase changes are logged here at debug level. */
  readonly log: { debug(obj: object, msg: string): void; isLevelEnabled(level: string): boolean };
  /** The rate at which CancelRequests with an unknown key may fan out to every backend. */
  readonly fanout: FanoutBudget;
  /** With coordination: this member's key tag, and where another member's keys are cancelled. */
  readonly peers?: ListenerPeers;
  /** A connect to a backend failed: the health checker should look again now. */
  onConnectFailure(backend: string, err: BackendConnectError): void;
  /**
   * pgwarden closed (down, maint, fenced …) a backend before it answered a session's startup:
   * nothing has reached the client, so the session goes back to routing instead of failing.
   */
  onRedispatch(backend: string, reason: CloseReason): void;
  /** A server accepted a session's connection and has said nothing for `ms`: the checker should look now. */
  onSlowAnswer(backend: string, ms: number): void;
  /** A session could not be routed (queue timeout, queue full …). */
  onRejected(err: RoutingError): void;
  /** The client was sent an ErrorResponse and closed (bad packet, timeout …); code PGW_CLIENT_ERROR unless given. */
  onClientError(sqlstate: string, message: string, code?: ErrorCode): void;
  onSessionEnd(end: SessionEnd): void;
  /** The session reached its backend and is now a pipe. */
  onSessionStart(backend: string): void;
  /** pgwarden closed an established session (drain, maint, switchover …). */
  onClosedByProxy(backend: string | undefined, reason: CloseReason, inTransaction: boolean): void;
  /** A CancelRequest was delivered exactly, forwarded to the member that issued it, fanned out, or dropped (budget spent). */
  onCancel(outcome: CancelOutcome): void;
  /** An accept or a connect failed for lack of file descriptors (EMFILE/ENFILE): logged once per burst. */
  onOutOfDescriptors(where: string, errno: string | undefined): void;
  /** A bug: a session continuation threw; the session was closed and cleaned up. */
  onInternalError(err: Error): void;
  /**
   * sessions.survive: what makes a session movable (its state tracker, the logins); undefined
   * while survive is off. Asked once per session, when its startup answer comes.
   */
  survive(): SurviveKit | undefined;
  onMoved(m: SessionMoved): void;
  onNotMoved(n: SessionNotMoved): void;
  /** Where a CancelRequest with an unknown key goes: every backend the listener can route to. */
  cancelTargets(): CancelTarget[];
  sendCancel(host: string, port: number, packet: Buffer): Promise<boolean>;
}
