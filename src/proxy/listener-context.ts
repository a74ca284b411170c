// Everything a Session needs from the rest of the proxy, as one narrow interface: the session
// stays testable and never reaches into the App.
import type { FailoverConfig, HealthConfig, ListenerConfig, ProxyConfig, TlsConfig } from '../config/types';
import type { Router } from '../routing/router';
import type { RoutingError } from '../routing/routing-error';
import type { Topology } from '../routing/topology';
import type { BackendConnectError } from './backend-connect';
import type { CancelRegistry, CancelTarget } from './cancel-registry';
import type { CloseReason } from './close-reason';

export interface SessionEnd {
  backend?: string;
  client: string;
  user?: string;
  database?: string;
  durationMs: number;
  bytesFromClient: number;
  bytesToClient: number;
}

export interface ListenerContext {
  /** Replaced by a reload that changes this listener in place. */
  listener: ListenerConfig;
  readonly router: Router;
  readonly topology: Topology;
  readonly cancels: CancelRegistry;
  readonly tls: TlsConfig;
  readonly proxy: ProxyConfig;
  readonly failover: FailoverConfig;
  readonly health: HealthConfig;
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
  /** The client was sent an ErrorResponse and closed (bad packet, timeout …). */
  onClientError(sqlstate: string, message: string): void;
  onSessionEnd(end: SessionEnd): void;
  /** The session reached its backend and is now a pipe. */
  onSessionStart(backend: string): void;
  /** pgwarden closed an established session (drain, maint, switchover …). */
  onClosedByProxy(backend: string | undefined, reason: CloseReason, inTransaction: boolean): void;
  /** Where a CancelRequest with an unknown key goes: every backend the listener can route to. */
  cancelTargets(): CancelTarget[];
  sendCancel(host: string, port: number, packet: Buffer): Promise<boolean>;
}
