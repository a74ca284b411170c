// Why a session ended: one named cause per session, logged once in `session.end` and counted
// once in pgwarden_sessions_ended_total{cause}.
export type EndCause =
  /** The client sent Terminate ('X') and closed: the normal end of a session. */
  | 'client-terminate'
  /** The client closed its side without Terminate (FIN), or went away while waiting. */
  | 'client-closed'
  /** The client's connection was reset (ECONNRESET, EPIPE …). */
  | 'client-reset'
  /** The client stopped answering: TCP keepalive or TCP_USER_TIMEOUT gave up (client_keepalive, client_user_timeout). */
  | 'client-timeout'
  /** Idle between transactions for proxy.client_idle_timeout. */
  | 'idle-timeout'
  /** The server closed the connection (after a FATAL, an admin's pg_terminate_backend …). */
  | 'server-closed'
  /** The server's connection was reset. */
  | 'server-reset'
  /** The server stopped answering: keepalive or TCP_USER_TIMEOUT gave up. */
  | 'server-timeout'
  /** The server answered the startup with something that is not the PostgreSQL protocol. */
  | 'server-protocol-error'
  /** pgwarden closed the session: see `reason` (down, maint, fenced, switchover, reload, shutdown). */
  | 'drained'
  /** No startup packet within client_login_timeout. */
  | 'login-timeout'
  /** The client sent something that is not a valid first packet, or too much too early. */
  | 'protocol-error'
  /** auth.mode proxy: the client's password was wrong, its user unknown, or its SASL messages malformed. */
  | 'auth-failed'
  /** auth.mode proxy: the server refused pgwarden's login as the client's user (the client got the server's error). */
  | 'login-failed'
  /** No backend for the route (queue timeout, queue full, shutting down). */
  | 'rejected'
  /** A CancelRequest was forwarded (such a connection never becomes a session). */
  | 'cancel'
  /** A bug in pgwarden: the client got XX000 and the session was cleaned up. */
  | 'internal-error';


/** A socket error, named from the client's or the server's side. */
export function causeOfSocketError(side: 'client' | 'server', err: NodeJS.ErrnoException | undefined): EndCause {
  // ETIMEDOUT on an established socket is the kernel giving up: keepalive probes unanswered or
  // data unacknowledged for TCP_USER_TIMEOUT.
  const timedOut = err?.code === 'ETIMEDOUT';
  if (side === 'client') return timedOut ? 'client-timeout' : 'client-reset';
  return timedOut ? 'server-timeout' : 'server-reset';
}

