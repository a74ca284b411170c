// The validated, defaulted and frozen configuration every module reads.
// Durations are milliseconds, sizes are bytes. Produced only by config/load.ts.

export type Route = 'primary' | 'replica' | 'any';
export type Balance = 'roundrobin' | 'leastconn' | 'random';
export type CheckKind = 'postgres' | 'tcp';
export type TlsMode = 'passthrough' | 'disable';
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
}

export interface FailoverConfig {
  readonly queueTimeout: number;
  readonly queueSize: number;
}

export interface TlsConfig {
  readonly mode: TlsMode;
}

export interface LoggingConfig {
  readonly level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

export interface ProxyConfig {
  /** Time a new client has to send its startup packet. */
  readonly clientLoginTimeout: number;
  /** Time to open a TCP connection to a backend before trying the next one. */
  readonly connectTimeout: number;
  /** On SIGTERM/SIGINT: how long sessions may finish before they are closed. */
  readonly shutdownTimeout: number;
}

export interface Config {
  readonly listeners: readonly ListenerConfig[];
  readonly backends: readonly BackendConfig[];
  readonly health: HealthConfig;
  readonly failover: FailoverConfig;
  readonly tls: TlsConfig;
  readonly logging: LoggingConfig;
  readonly proxy: ProxyConfig;
}
