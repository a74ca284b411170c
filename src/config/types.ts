// The validated, defaulted and frozen configuration every module reads.
// Durations are milliseconds, sizes are bytes. Produced only by config/load.ts.

export type Route = 'primary' | 'replica' | 'any';
export type Balance = 'roundrobin' | 'leastconn' | 'random';
export type CheckKind = 'postgres' | 'tcp';
export type TlsMode = 'passthrough' | 'disable' | 'terminate';
/** libpq's sslmode names for pgwarden's own connections to the servers. */
export type ServerTlsMode = 'disable' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';
export type ConfiguredRole = 'primary' | 'replica';

export interface ListenerConfig {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly route: Route;
  readonly balance: Balance;
  /** `primary`: a replica route falls back to the primary when no replica is a candidate. */
  readonly fallback: 'primary' | 'none';
  /** Upper bound of concurrent client sessions on this listener (0 = unlimited). */
  readonly maxConnections: number;
}

export interface BackendConfig {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** Relative share of new sessions; 0 takes no new sessions. Default 100. */
  readonly weight: number;
  /** HAProxy semantics: used only when no non-backup candidate is up. */
  readonly backup: boolean;
  /** Role for `tcp` checks (a `postgres` check detects the role itself). */
  readonly role?: ConfiguredRole;
  /** This server's Patroni REST port when it differs from `health.patroni.port`. */
  readonly patroniPort?: number;
}

export interface HealthConfig {
  readonly check: CheckKind;
  readonly user: string;
  /** Resolved from `password` or `password_env`; never logged. */
  readonly password?: string;
  readonly database: string;
  readonly interval: number;
  readonly fastInterval: number;
  readonly downInterval: number;
  readonly timeout: number;
  readonly rise: number;
  readonly fall: number;
  /** Fraction 0..1 of random spread added to every interval so checks do not align. */
  readonly jitter: number;
  /** Replicas further behind than this take no new sessions. */
  readonly maxReplicaLag: { readonly bytes?: number; readonly ms?: number };
  /** HAProxy agent-check: a small agent on each database host reports up/drain/down/weight%. */
  readonly agent?: { readonly port: number; readonly interval: number; readonly timeout: number };
  /** Patroni beside each server: its REST API per backend, and optionally its DCS (absent: SQL checks only). */
  readonly patroni?: PatroniConfig;
}

/** `health.patroni`: what Patroni says of each member, and the switchover key it writes to etcd. */
export interface PatroniConfig {
  /** REST port on each backend's host (a backend's own `patroni_port` wins). */
  readonly port: number;
  readonly scheme: 'http' | 'https';
  /** https: CA of the REST API's certificate (absent: the system's CAs). */
  readonly caFile?: string;
  /** REST poll period (ms). */
  readonly interval: number;
  /** Deadline of one REST request (ms). */
  readonly timeout: number;
  /** Patroni's DCS (etcd v3): the `<namespace>/<scope>/failover` key announces a switchover. */
  readonly dcs?: {
    readonly namespace: string;
    readonly scope: string;
    readonly etcd: {
      readonly endpoints: readonly string[];
      readonly timeout: number;
      readonly user?: string;
      /** Resolved from `password_env`; never logged. */
      readonly password?: string;
      readonly tls?: { readonly caFile?: string; readonly certFile?: string; readonly keyFile?: string };
    };
  };
}

export type FailoverMode = 'follow' | 'promote';
export type OnDown = 'shutdown-sessions' | 'keep';

export interface FailoverConfig {
  readonly queueTimeout: number;
  readonly queueSize: number;
  /** follow: route to whichever server reports it is primary; promote: pgwarden promotes. */
  readonly mode: FailoverMode;
  /** What happens to the sessions of a backend that goes DOWN. */
  readonly onDown: OnDown;
  /** promote mode: how long the primary must stay down before pgwarden promotes. */
  readonly promoteAfter: number;
  /** promote mode: never promote a replica further behind than this many bytes. */
  readonly maxLagOnFailover: number;
  /** Planned switchover: how long in-flight transactions may run before their sessions are closed. */
  readonly drainTimeout: number;
  /**
   * While there is no primary, or the primary is failing its checks: poll every healthy replica's
   * role this often, so a promotion is followed within one poll. 0: no polls.
   */
  readonly watchInterval: number;
}

export type HookEvent = 'pre_switchover' | 'post_switchover' | 'on_promote' | 'on_primary_change' | 'on_backend_down' | 'on_backend_up' | 'on_fence';

export interface HookConfig {
  readonly command: readonly string[];
  readonly timeout: number;
  readonly env: Readonly<Record<string, string>>;
}

export type HooksConfig = Readonly<Partial<Record<HookEvent, readonly HookConfig[]>>>;

export interface AdminConfig {
  readonly host: string;
  readonly port: number;
  /** Resolved from `token` or `token_env`; without one, state changes are refused. Never logged. */
  readonly token?: string;
}

export interface HostThreshold {
  /** Percent 0..100. */
  readonly above: number;
  /** The value must stay above for this long (ms) before the alert is raised. */
  readonly for: number;
}

export interface HostConfig {
  /** Sampling interval of host metrics (ms). */
  readonly interval: number;
  readonly thresholds: {
    readonly cpu?: HostThreshold;
    readonly memory?: HostThreshold;
    readonly disk?: HostThreshold;
  };
}

export interface TlsConfig {
  /**
   * passthrough: TLS end to end between client and server (pgwarden sees no messages);
   * terminate: pgwarden does TLS with the client itself (its certificate), so it sees messages;
   * disable: SSLRequest is answered N.
   */
  readonly mode: TlsMode;
  /** terminate: PEM certificate (the chain may follow it in the same file) and key. */
  readonly certFile?: string;
  readonly keyFile?: string;
  /** terminate: the lowest TLS version a client may use. */
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3';
  /** terminate: CA for client certificates (with clientCert verify). */
  readonly caFile?: string;
  /** terminate: ask for and verify a client certificate. */
  readonly clientCert: 'off' | 'verify';
  /** terminate: a client that does not ask for TLS is served in plain text (allow) or refused (require). */
  readonly client: 'allow' | 'require';
  /** TLS from pgwarden to the servers (sessions under terminate, and the health checks), like libpq's sslmode. */
  readonly server: ServerTlsMode;
  /** CA that signed the servers' certificates (verify-ca, verify-full); absent: the system's CAs. */
  readonly serverCaFile?: string;
}

export type AuthMode = 'passthrough' | 'proxy';

/** Authentication at the proxy (issue 19): pgwarden authenticates clients itself and logs in to servers as them. */
export interface AuthConfig {
  /** passthrough: the client authenticates with the server end to end (default); proxy: with pgwarden. */
  readonly mode: AuthMode;
  /** proxy: the role auth.query runs as. */
  readonly user?: string;
  /** proxy: its password, resolved from `password_env`; never logged. */
  readonly password?: string;
  /** proxy: returns (usename, passwd) for $1, the user name of the client's startup packet. */
  readonly query: string;
  /** proxy: the database auth.query runs in. */
  readonly database: string;
}

export interface LoggingConfig {
  readonly level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** json (default) for machines, pretty (pino-pretty) for people at a terminal. */
  readonly format: 'json' | 'pretty';
}

export interface ProxyConfig {
  /** Time a new client has to send its startup packet. */
  readonly clientLoginTimeout: number;
  /**
   * Time to open a TCP connection to a backend before trying the next one; also how long a
   * server that accepted may stay silent before its checker is asked to look again now.
   */
  readonly connectTimeout: number;
  /** Time a server that accepted the connection has to answer the session's first packet before the next one is tried. */
  readonly startupTimeout: number;
  /** Session startups (connect until ReadyForQuery) in flight to one server at most (0: no limit); the others wait in the queue. */
  readonly maxConcurrentStartups: number;
  /** On SIGTERM/SIGINT: how long sessions may finish before they are closed. */
  readonly shutdownTimeout: number;
  /** TCP keepalive on client sockets (idleMs 0: off), so a client that vanished without a FIN is noticed. */
  readonly clientKeepalive: { readonly idleMs: number; readonly intervalMs: number; readonly count: number };
  /** TCP_USER_TIMEOUT on client sockets (0: the kernel default, ~15 minutes of retransmissions). */
  readonly clientUserTimeout: number;
  /** Close sessions idle between transactions this long (0: never), like PostgreSQL's idle_session_timeout. */
  readonly clientIdleTimeout: number;
  /** CancelRequests with an unknown key fanned out to every backend, per second and listener (also the burst). */
  readonly unknownCancelRate: number;
}

/** What happens to a client's session when its server goes away (issue 19). */
export interface SessionsConfig {
  /**
   * on: an idle session (between transactions, nothing in flight) whose server goes away or is
   * replaced moves to the route's new server with its state; the client sees only a delay.
   * off (default): it is closed at a boundary with 57P01, as before.
   */
  readonly survive: 'on' | 'off';
}

export type OnEtcdLoss = 'keep' | 'readonly';

/** Several pgwarden instances acting as one through etcd (absent: one instance on its own). */
export interface CoordinationConfig {
  /** This instance; one of `members`. */
  readonly name: string;
  /** The static member list: a quorum is a majority of it, never of who is alive now. */
  readonly members: readonly string[];
  /** Lease of this instance's keys (ms; etcd grants whole seconds). */
  readonly ttl: number;
  /** With etcd unreachable: keep routing writes to the primary this instance knows, or route none. */
  readonly onEtcdLoss: OnEtcdLoss;
  /**
   * The host the other instances reach this one at, for listeners bound to a wildcard address:
   * with auth.mode proxy they send a CancelRequest for a key this instance issued there.
   */
  readonly advertise?: string;
  readonly etcd: {
    readonly endpoints: readonly string[];
    /** Keys of this cluster live under it (no trailing slash). */
    readonly prefix: string;
    /** Deadline of one etcd request (ms). */
    readonly timeout: number;
    readonly user?: string;
    /** Resolved from `password_env`; never logged. */
    readonly password?: string;
    readonly tls?: { readonly caFile?: string; readonly certFile?: string; readonly keyFile?: string };
  };
}

export interface Config {
  readonly listeners: readonly ListenerConfig[];
  readonly backends: readonly BackendConfig[];
  readonly health: HealthConfig;
  readonly failover: FailoverConfig;
  readonly tls: TlsConfig;
  readonly auth: AuthConfig;
  readonly logging: LoggingConfig;
  readonly proxy: ProxyConfig;
  readonly sessions: SessionsConfig;
  readonly hooks: HooksConfig;
  /** Absent: no admin API. */
  readonly admin?: AdminConfig;
  readonly host: HostConfig;
  /** Absent: this instance acts alone. */
  readonly coordination?: CoordinationConfig;
}
