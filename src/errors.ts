// Every error pgwarden names, in one place: the stable PGW_ codes (what each means and, when a
// PostgreSQL client or an admin API caller sees it, the SQLSTATE or HTTP status it gets), the
// SQLSTATEs pgwarden sends, and the error classes.
//
// Codes are API: logs, alerts, scripts and the admin API's JSON carry them, so a code is never
// renamed or given another meaning; one that is no longer raised moves to RETIRED_CODES. Adding
// a code is one line in ERROR_CODES plus its row in README.md, "Error codes";
// test/unit/errors.test.ts fails when a PGW_ code appears in src/ but not here, or here but not
// in the README.
//
// Ground floor: this file imports nothing from src/ (the protocol layer takes SqlState from
// here). The proxy's classes live here, except where a class needs a higher layer's types:
// then it stays beside them, extends PgwardenError and takes its code from the catalogue
// (BackendConnectError in proxy/backend-connect.ts carries health's FailureLayer). The cluster
// harness's classes stay in src/harness/ the same way: that is tooling for the demo and the tests, to
// be moved as one piece. Match errors by class (`instanceof`) or by `code`, never by the shape
// of an object.

/**
 * SQLSTATEs pgwarden sends to clients in an ErrorResponse (PostgreSQL docs, Appendix A,
 * "PostgreSQL Error Codes"). They are PostgreSQL's own, so a driver reacts as it would to the
 * server itself. Each is in README.md's table of what a client may receive. Never reuse a
 * constant for a different meaning.
 */
export const SqlState = {
  /** 08P01 protocol_violation: malformed packet, bad length, garbage. */
  PROTOCOL_VIOLATION: '08P01',
  /** 0A000 feature_not_supported: PostgreSQL uses it for an unsupported protocol version. */
  FEATURE_NOT_SUPPORTED: '0A000',
  /** 28000 invalid_authorization_specification: PostgreSQL uses it for a startup packet without `user`. */
  INVALID_AUTHORIZATION_SPECIFICATION: '28000',
  /** 57P01 admin_shutdown: pgwarden closes the session (shutdown, drain, switchover, fence, reload). */
  ADMIN_SHUTDOWN: '57P01',
  /** 57P03 cannot_connect_now: no backend available for the route. */
  CANNOT_CONNECT_NOW: '57P03',
  /** 08006 connection_failure: the connection is gone (never reaches a client: it hung up first). */
  CONNECTION_FAILURE: '08006',
  /** 53300 too_many_connections: a listener or its wait queue is full (a server's own 53300 to a health check is L7FULL). */
  TOO_MANY_CONNECTIONS: '53300',
  /** XX000 internal_error: a bug in pgwarden, not the client's fault. */
  INTERNAL_ERROR: 'XX000',
  /** 53000 insufficient_resources: pgwarden is out of file descriptors (PostgreSQL's own for "out of file descriptors"). */
  INSUFFICIENT_RESOURCES: '53000',
  /** 28P01 invalid_password: auth.mode proxy refused the client (wrong password or unknown user), PostgreSQL's own text. */
  INVALID_PASSWORD: '28P01',
  /** 57P05 idle_session_timeout: idle between transactions for proxy.client_idle_timeout. */
  IDLE_SESSION_TIMEOUT: '57P05',
} as const;

export type SqlStateCode = (typeof SqlState)[keyof typeof SqlState];

/** SQLSTATEs pgwarden reads from servers and acts on (never sent by pgwarden itself). */
export const ServerSqlState = {
  /** 57014 query_canceled: a health check query hit statement_timeout (L7TOUT). */
  QUERY_CANCELED: '57014',
} as const;

/** One catalogue entry: one line saying what happened, and what a client or caller receives. */
export interface CodeInfo {
  readonly meaning: string;
  /** The SQLSTATE of the ErrorResponse a PostgreSQL client gets with it. */
  readonly sqlstate?: SqlStateCode;
  /** The HTTP status the admin API answers with it (the JSON body has `code` and `error`). */
  readonly http?: number;
}

/**
 * Every PGW_ code, one line each. The README table ("Error codes") says what an operator should
 * do about each one.
 */
export const ERROR_CODES = {
  // Client sessions: a FATAL ErrorResponse to the client; the log line and session.rejected carry the code.
  PGW_QUEUE_TIMEOUT: { sqlstate: SqlState.CANNOT_CONNECT_NOW, meaning: 'no backend could take the session within failover.queue_timeout' },
  PGW_QUEUE_FULL: { sqlstate: SqlState.TOO_MANY_CONNECTIONS, meaning: 'failover.queue_size clients already wait on the listener' },
  PGW_SHUTTING_DOWN: { sqlstate: SqlState.ADMIN_SHUTDOWN, meaning: 'pgwarden is stopping and routes no new session' },
  PGW_CLIENT_GONE: { sqlstate: SqlState.CONNECTION_FAILURE, meaning: 'the client hung up while waiting in the queue (neither logged nor counted)' },
  PGW_TOO_MANY_CLIENTS: { sqlstate: SqlState.TOO_MANY_CONNECTIONS, meaning: 'the listener already holds max_connections sessions' },
  PGW_OUT_OF_DESCRIPTORS: { sqlstate: SqlState.INSUFFICIENT_RESOURCES, meaning: 'pgwarden could not open a connection to a server: it is out of file descriptors (EMFILE, ENFILE)' },
  PGW_INTERNAL: { sqlstate: SqlState.INTERNAL_ERROR, meaning: 'a bug in pgwarden refused the client (the message says where)' },
  PGW_AUTH_FAILED: { sqlstate: SqlState.INVALID_PASSWORD, meaning: 'auth.mode proxy: the client gave a wrong password or named an unknown user (refused as PostgreSQL refuses it)' },
  PGW_AUTH_LOOKUP: { sqlstate: SqlState.CANNOT_CONNECT_NOW, meaning: 'auth.mode proxy: auth.query could not be run (no server up, the auth user refused, the query failed)' },
  PGW_SERVER_LOGIN: { meaning: 'auth.mode proxy: pgwarden, logging in to a server as the client\'s user, was refused or cut off' },
  PGW_CLIENT_ERROR: { meaning: 'a client got an ErrorResponse and a close before its session began; the SQLSTATE says why' },
  PGW_BACKEND_CONNECT: { meaning: 'a session could not reach a backend (L4CON, L4TOUT, L7TOUT) or it did not answer like PostgreSQL (L7RSP)' },
  // Health checks and sockets.
  PGW_CHECK_PROTOCOL: { meaning: 'a backend answered a health check with bytes that are not the PostgreSQL protocol' },
  PGW_KEEPALIVE_FALLBACK: { meaning: 'warning: net-keepalive is unavailable, backend sockets keep only Node.js keepalive' },
  PGW_SESSION_MOVE: { meaning: 'sessions.survive: a session could not be moved to its route\'s new server (login refused, state replay failed, protocol error); it was closed as before' },
  PGW_CANCEL_KEY_RANGE: { meaning: 'a cancel key part is not a 32-bit integer (a bug in the caller)' },
  // Admin API: the JSON body is { error, code }.
  PGW_ADMIN_BAD_REQUEST: { http: 400, meaning: 'the request body or a query parameter is malformed' },
  PGW_ADMIN_UNAUTHORIZED: { http: 401, meaning: 'a state change came without "Authorization: Bearer <token>"' },
  PGW_ADMIN_DISABLED: { http: 403, meaning: 'state changes are off: no admin.token is configured' },
  PGW_ADMIN_FORBIDDEN: { http: 403, meaning: 'the admin token is wrong' },
  PGW_ADMIN_NOT_FOUND: { http: 404, meaning: 'no such admin route' },
  PGW_UNKNOWN_BACKEND: { http: 404, meaning: 'no backend by that name in the running configuration' },
  PGW_ADMIN_METHOD: { http: 405, meaning: 'wrong HTTP method for the route (the Allow header names the right one)' },
  PGW_ADMIN_BODY_TIMEOUT: { http: 408, meaning: 'the request body did not arrive within 10 s' },
  PGW_ADMIN_BODY_TOO_LARGE: { http: 413, meaning: 'the request body is over 16 KiB' },
  PGW_ADMIN_INTERNAL: { http: 500, meaning: 'the admin handler threw (a bug); logged as admin.error' },
  PGW_RELOAD_FAILED: { http: 400, meaning: 'the reloaded configuration is invalid or could not be applied; the running one stays' },
  PGW_SWITCHOVER_FAILED: { http: 409, meaning: 'a planned switchover was refused or failed; the body says at which step' },
  PGW_NO_PRIMARY: { http: 503, meaning: 'GET /primary: no backend is an up primary' },
  PGW_NO_REPLICA: { http: 503, meaning: 'GET /replica: no up replica takes traffic within the lag limit' },
  PGW_ADMIN_SQL_FAILED: { meaning: 'a statement pgwarden runs for failover (pg_promote(), WAL positions) failed' },
  // Configuration: `pgwarden check`/startup print the problems and exit 2; a reload keeps the running config.
  PGW_CONFIG_INVALID: { meaning: 'the configuration file is not valid YAML or breaks the schema; every problem is listed' },
  PGW_CONFIG_UNREADABLE: { meaning: 'the configuration file cannot be read' },
  PGW_CONFIG_BAD_VALUE: { meaning: 'one value does not parse (a duration, size, address …); reported at its key' },
  PGW_TLS_FILES: { meaning: 'a certificate, key or CA file named under `tls` cannot be read or used (not PEM, encrypted, a key of another certificate); every problem is listed' },
  // Cluster harness (src/harness/: the demo, tests and benchmarks), never the proxy.
  PGW_PG_BINARIES_MISSING: { meaning: 'initdb, pg_ctl, postgres or pg_basebackup not found' },
  PGW_POSTGRES_USER_MISSING: { meaning: 'running as root, and there is no postgres OS user to run PostgreSQL as' },
  PGW_PG_COMMAND_FAILED: { meaning: 'a PostgreSQL program (initdb, pg_ctl, pg_basebackup, openssl) failed; the message has its output' },
  PGW_PG_CLUSTER_OPTIONS: { meaning: 'invalid cluster options, or a baseDir the postgres user cannot use' },
  PGW_PG_START_FAILED: { meaning: 'a server did not start or accept connections; the message has its log tail' },
  PGW_PG_WAIT_TIMEOUT: { meaning: 'a wait (replication, promotion, a port closing) passed its deadline' },
  PGW_PG_NO_SINGLE_PRIMARY: { meaning: 'zero or several running servers are out of recovery' },
  PGW_PG_NOT_A_MEMBER: { meaning: 'a node that belongs to another cluster' },
  PGW_NO_FREE_PORT: { meaning: 'no free TCP port in [20000, 32000) on 127.0.0.1' },
  PGW_ETCD_BINARIES_MISSING: { meaning: 'etcd or etcdctl not found (the etcd test harness)' },
  PGW_ETCD_OPTIONS: { meaning: 'invalid etcd cluster options, or a member index out of range' },
  PGW_ETCD_START_FAILED: { meaning: 'an etcd member did not start or the cluster did not become healthy; the message has the log tails' },
  PGW_ETCD_STOP_FAILED: { meaning: 'an etcd member did not exit after SIGKILL' },
  PGW_PATRONI_BINARIES_MISSING: { meaning: 'patroni or patronictl not found (the Patroni test harness)' },
  PGW_PATRONI_OPTIONS: { meaning: 'invalid Patroni cluster options, or a node of another cluster' },
  PGW_PATRONI_START_FAILED: { meaning: 'a Patroni node exited, or no leader with two streaming replicas in time; the message has the log tails' },
  PGW_PATRONI_COMMAND_FAILED: { meaning: 'a patronictl command failed; the message has its output' },
} as const satisfies Record<`PGW_${string}`, CodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * Codes no longer raised. They stay listed so that nobody gives one a new meaning: whatever
 * matched on the old one would silently match the new one.
 */
export const RETIRED_CODES: readonly string[] = [];

const CATALOGUE: Readonly<Record<ErrorCode, CodeInfo>> = ERROR_CODES;

/** The catalogue entry of a code. */
export function codeInfo(code: ErrorCode): CodeInfo {
  return CATALOGUE[code];
}

type CodeWith<K extends keyof CodeInfo> = { [C in ErrorCode]: (typeof ERROR_CODES)[C] extends Record<K, unknown> ? C : never }[ErrorCode];

/** Codes a PostgreSQL client receives as an ErrorResponse (they have a SQLSTATE). */
export type ClientErrorCode = CodeWith<'sqlstate'>;
/** Codes the admin API answers with (they have an HTTP status). */
export type AdminHttpCode = CodeWith<'http'>;

export function sqlStateOf(code: ClientErrorCode): SqlStateCode {
  return CATALOGUE[code].sqlstate!;
}

export function httpStatusOf(code: AdminHttpCode): number {
  return CATALOGUE[code].http!;
}

/** Base of every error pgwarden throws on purpose: a stable code from the catalogue. */
export class PgwardenError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** True for a PgwardenError with this code. */
export function hasCode(e: unknown, code: ErrorCode): e is PgwardenError {
  return e instanceof PgwardenError && e.code === code;
}

// ---- Client sessions ----

export type RoutingErrorCode = Extract<ClientErrorCode, 'PGW_QUEUE_TIMEOUT' | 'PGW_QUEUE_FULL' | 'PGW_CLIENT_GONE' | 'PGW_SHUTTING_DOWN' | 'PGW_TOO_MANY_CLIENTS'>;

/**
 * A session that could not be routed. The client sees it as a FATAL ErrorResponse: the SQLSTATE
 * (from the catalogue) for drivers, the message for a person (which listener, which backends,
 * how long it waited).
 */
export class RoutingError extends PgwardenError {
  declare readonly code: RoutingErrorCode;
  readonly sqlstate: SqlStateCode;

  constructor(code: RoutingErrorCode, message: string) {
    super(code, message);
    this.sqlstate = sqlStateOf(code);
  }
}

/**
 * pgwarden itself has no file descriptor left for a server connection (EMFILE: its own limit,
 * ENFILE: the system's). Not the server's fault: the session is refused with 53000 rather than
 * retried elsewhere (every server would fail the same way) and no checker is asked to look.
 */
export class OutOfDescriptorsError extends PgwardenError {
  declare readonly code: 'PGW_OUT_OF_DESCRIPTORS';
  readonly sqlstate: SqlStateCode;

  constructor(readonly errno: string, message: string) {
    super('PGW_OUT_OF_DESCRIPTORS', message);
    this.sqlstate = sqlStateOf('PGW_OUT_OF_DESCRIPTORS');
  }
}

/**
 * Moving a session to a new server failed at login or replay (sessions.survive, issue 19). The
 * session is closed as it would have been without survive; `sqlstate` is the server's when the
 * server refused something.
 */
export class SessionMoveError extends PgwardenError {
  declare readonly code: 'PGW_SESSION_MOVE';

  constructor(message: string, readonly sqlstate?: string) {
    super('PGW_SESSION_MOVE', message);
  }
}

/** A CancelRequest key part that is not a 32-bit integer (protocol/cancel.ts). */
export class CancelKeyRangeError extends PgwardenError {
  declare readonly code: 'PGW_CANCEL_KEY_RANGE';

  constructor(message: string) {
    super('PGW_CANCEL_KEY_RANGE', message);
  }
}

// ---- Health checks and failover ----

/** A check connection carried something that is not PostgreSQL's protocol (protocol/message-reader.ts). */
export class CheckProtocolError extends PgwardenError {
  declare readonly code: 'PGW_CHECK_PROTOCOL';

  constructor(message: string) {
    super('PGW_CHECK_PROTOCOL', message);
  }
}

/** A statement pgwarden runs itself for failover work failed (control/admin-sql.ts). */
export class AdminSqlError extends PgwardenError {
  declare readonly code: 'PGW_ADMIN_SQL_FAILED';

  constructor(message: string) {
    super('PGW_ADMIN_SQL_FAILED', message);
  }
}

// ---- Admin API ----

/** An admin request answered with an error status; the server turns it into `{ error, code }`. */
export class AdminHttpError extends PgwardenError {
  declare readonly code: AdminHttpCode;
  readonly status: number;

  constructor(code: AdminHttpCode, message: string) {
    super(code, message);
    this.status = httpStatusOf(code);
  }
}

export class UnknownBackendError extends PgwardenError {
  declare readonly code: 'PGW_UNKNOWN_BACKEND';

  constructor(readonly backend: string) {
    super('PGW_UNKNOWN_BACKEND', `no backend named ${backend}`);
  }
}

// ---- Configuration ----
//
// A ConfigError carries every problem found in one pass (not only the first), each with the key
// path the user wrote (`backends[1].port`), what was expected and, where it helps, a hint.
// `format()` renders them for a terminal; the CLI prints it and exits 2.

export type ConfigErrorCode = Extract<ErrorCode, 'PGW_CONFIG_INVALID' | 'PGW_CONFIG_UNREADABLE'>;

export interface ConfigProblem {
  /** Key path as written in YAML (`health.interval`, `backends[1].port`); '' for the whole file. */
  readonly path: string;
  /** What is wrong and what was expected. */
  readonly message: string;
  /** How to fix it, when that is not obvious from the message. */
  readonly hint?: string;
  /** 1-based line in the YAML source, when known. */
  readonly line?: number;
  /** 1-based column in the YAML source, when known. */
  readonly column?: number;
}

export class ConfigError extends PgwardenError {
  declare readonly code: ConfigErrorCode;
  readonly problems: readonly ConfigProblem[];
  /** File path, or `<string>` for text given directly. */
  readonly source: string;

  constructor(code: ConfigErrorCode, source: string, problems: readonly ConfigProblem[]) {
    super(code, renderProblems(code, source, problems));
    this.source = source;
    this.problems = problems;
  }

  /** One header line, then one line per problem; no stack trace. */
  format(): string {
    return this.message;
  }
}

/**
 * A single value that does not parse (a duration, a size, a bind address ...). Thrown by the
 * pure value parsers; the schema turns it into one problem at the key where the value sits.
 */
export class ConfigValueError extends PgwardenError {
  declare readonly code: 'PGW_CONFIG_BAD_VALUE';
  readonly hint?: string;

  constructor(message: string, hint?: string) {
    super('PGW_CONFIG_BAD_VALUE', message);
    if (hint !== undefined) this.hint = hint;
  }
}

/**
 * The files `tls` names (certificate, key, CAs) cannot be used. Like a ConfigError: startup and
 * `pgwarden check` print it and exit 2, and a reload that meets it keeps the running files.
 */
export class TlsFilesError extends PgwardenError {
  declare readonly code: 'PGW_TLS_FILES';
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[]) {
    const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`;
    super('PGW_TLS_FILES', [`cannot use the TLS files the configuration names (${count}):`, ...problems.map((p) => `  ${renderProblem('', p)}`)].join('\n'));
    this.problems = problems;
  }
}

function renderProblems(code: ConfigErrorCode, source: string, problems: readonly ConfigProblem[]): string {
  const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`;
  const header =
    code === 'PGW_CONFIG_UNREADABLE'
      ? `cannot read configuration ${source}:`
      : `invalid configuration ${source} (${count}):`;
  return [header, ...problems.map((p) => `  ${renderProblem(source, p)}`)].join('\n');
}

function renderProblem(source: string, problem: ConfigProblem): string {
  const column = problem.column === undefined ? '' : `:${problem.column}`;
  const where = problem.line === undefined ? '' : `${source}:${problem.line}${column}: `;
  // An unknown-key message already names the full path; do not say it twice.
  const path = problem.path === '' || problem.message.includes(`\`${problem.path}\``) ? '' : `${problem.path}: `;
  const hint = problem.hint === undefined ? '' : ` (hint: ${problem.hint})`;
  return `${where}${path}${problem.message}${hint}`;
}
