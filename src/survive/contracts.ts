// The seams of issue 19 ("sessions that survive a failover"), fixed first so that authentication
// at the proxy, the session-state tracker and the session mover can be built side by side.
// Types only: each side lives in its own files and meets the others here.

/** The client's StartupMessage parameters (user, database, application_name, options, …). */
export type StartupParams = ReadonlyMap<string, string>;

/**
 * What pgwarden keeps after it authenticated a client itself (auth.mode: proxy), enough to log
 * in to any server of the cluster again as that user. Never logged, never sent to /status.
 */
export type LoginSecret =
  | { readonly kind: 'scram-sha-256'; readonly clientKey: Buffer; readonly storedKey: Buffer; readonly serverKey: Buffer; readonly salt: Buffer; readonly iterations: number }
  | { readonly kind: 'md5'; /** "md5" + md5(password + user), as in pg_authid */ readonly hash: string }
  | { readonly kind: 'trust' };

/** The server's answer to a completed login, up to and including its first ReadyForQuery. */
export interface LoginResult {
  readonly processId: number;
  readonly secretKey: number;
  /** Every ParameterStatus the server sent during startup (name → value). */
  readonly parameters: ReadonlyMap<string, string>;
}

/**
 * Logs in to a freshly connected server socket (TLS already negotiated if any) as the session's
 * user: sends the StartupMessage, answers the server's authentication request from `secret`,
 * and resolves at the first ReadyForQuery. Rejects with the server's ErrorResponse (sqlstate,
 * message) or a protocol error; never leaves listeners on the socket afterwards.
 */
export type ServerLogin = (socket: import('node:net').Socket | import('node:tls').TLSSocket, params: StartupParams, secret: LoginSecret) => Promise<LoginResult>;

/** One step that rebuilds a session's state on a new server, in order, after login. */
export type ReplayStep =
  /** A simple Query (SET …, LISTEN …): must complete without error. */
  | { readonly kind: 'query'; readonly sql: string }
  /** A named prepared statement re-created with Parse (+ Sync by the mover). */
  | { readonly kind: 'parse'; readonly name: string; readonly query: string; readonly paramTypes: readonly number[] };

/** Whether a session can be rebuilt elsewhere right now, and if not, the reason for the log. */
export type Movability = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/**
 * Follows one session's state from whole protocol messages (type byte + body without the
 * 4-byte length), both directions, in relay order. Fed only when sessions.survive is on.
 */
export interface SessionStateTracker {
  fromClient(type: number, body: Buffer): void;
  fromServer(type: number, body: Buffer): void;
  /** Conservative: ok only when every piece of state is known and reproducible. */
  movable(): Movability;
  /** The steps that rebuild the session on a fresh server logged in with the same StartupParams. */
  replay(): readonly ReplayStep[];
  /** The ParameterStatus values the client has been told (to send it only the differences after a move). */
  parameters(): ReadonlyMap<string, string>;
}
