// From the parsed document (YAML key names, defaults applied, units converted) to the Config
// contract every module reads: camelCase names, secrets resolved from the environment,
// defaults that depend on other keys, deeply frozen. Pure.

import { DEFAULT_AUTH_QUERY, HOOK_EVENTS, type ParsedDocument } from './schema';
import type { AuthConfig, Config, CoordinationConfig, HookConfig, HookEvent, HostConfig, HostThreshold, PatroniConfig, TlsConfig } from './types';

/** `health.fast_interval` when not written, unless `interval` is shorter. */
const DEFAULT_FAST_INTERVAL_MS = 250;

// Every HookEvent of the contract has its key in the schema (a compile error otherwise).
const everyEventListed: Exclude<HookEvent, (typeof HOOK_EVENTS)[number]> extends never ? true : never = true;
void everyEventListed;

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/** `password_env` / `token_env` name a variable; rules.ts has already checked that it is set. */
function secret(value: string | undefined, variable: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  return value ?? (variable === undefined ? undefined : env[variable]);
}

function authOf(doc: ParsedDocument, env: NodeJS.ProcessEnv): AuthConfig {
  const { auth } = doc;
  const password = secret(undefined, auth.password_env, env);
  return {
    mode: auth.mode,
    ...(auth.user === undefined ? {} : { user: auth.user }),
    ...(password === undefined ? {} : { password }),
    query: auth.query ?? DEFAULT_AUTH_QUERY,
    database: auth.database ?? 'postgres',
  };
}

function hooksOf(doc: ParsedDocument): Config['hooks'] {
  const hooks: Partial<Record<HookEvent, readonly HookConfig[]>> = {};
  for (const event of HOOK_EVENTS) {
    const list = doc.hooks[event];
    if (list === undefined || list.length === 0) continue;
    hooks[event] = list.map((h) => ({ command: h.command, timeout: h.timeout, env: h.env }));
  }
  return hooks;
}

function hostOf(doc: ParsedDocument): HostConfig {
  const thresholds: { -readonly [K in keyof HostConfig['thresholds']]: HostThreshold } = {};
  for (const metric of ['cpu', 'memory', 'disk'] as const) {
    const threshold = doc.host.thresholds[metric];
    if (threshold !== undefined) thresholds[metric] = { above: threshold.above, for: threshold.for };
  }
  return { interval: doc.host.interval, thresholds };
}

/** Keys only `mode: terminate` reads are optional in the schema (rules.ts refuses them elsewhere); their defaults are here. */
function tlsOf(doc: ParsedDocument): TlsConfig {
  const { tls } = doc;
  return {
    mode: tls.mode,
    ...(tls.cert_file === undefined ? {} : { certFile: tls.cert_file }),
    ...(tls.key_file === undefined ? {} : { keyFile: tls.key_file }),
    minVersion: tls.min_version ?? 'TLSv1.2',
    ...(tls.ca_file === undefined ? {} : { caFile: tls.ca_file }),
    clientCert: tls.client_cert ?? 'off',
    client: tls.client ?? 'allow',
    server: tls.server,
    ...(tls.server_ca_file === undefined ? {} : { serverCaFile: tls.server_ca_file }),
  };
}

/** `coordination`, or undefined when the section is absent (this instance acts alone). */
function coordinationOf(doc: ParsedDocument, env: NodeJS.ProcessEnv): CoordinationConfig | undefined {
  const { coordination } = doc;
  if (coordination === undefined) return undefined;
  const { etcd } = coordination;
  const password = secret(undefined, etcd.password_env, env);
  const tls = {
    ...(etcd.tls?.ca_file === undefined ? {} : { caFile: etcd.tls.ca_file }),
    ...(etcd.tls?.cert_file === undefined ? {} : { certFile: etcd.tls.cert_file }),
    ...(etcd.tls?.key_file === undefined ? {} : { keyFile: etcd.tls.key_file }),
  };
  return {
    name: coordination.name,
    members: coordination.members,
    ttl: coordination.ttl,
    onEtcdLoss: coordination.on_etcd_loss,
    ...(coordination.advertise === undefined ? {} : { advertise: coordination.advertise }),
    etcd: {
      endpoints: etcd.endpoints,
      prefix: etcd.prefix,
      timeout: etcd.timeout,
      ...(etcd.user === undefined ? {} : { user: etcd.user }),
      ...(password === undefined ? {} : { password }),
      // An empty `tls:` adds nothing to what https:// endpoints already mean.
      ...(Object.keys(tls).length === 0 ? {} : { tls }),
    },
  };
}

/** `health.patroni`, or undefined when absent; interval and timeout default to the health check's. */
function patroniOf(doc: ParsedDocument, env: NodeJS.ProcessEnv): PatroniConfig | undefined {
  const p = doc.health.patroni;
  if (p === undefined) return undefined;
  const dcs = p.dcs;
  let dcsConfig: PatroniConfig['dcs'];
  if (dcs !== undefined) {
    const { etcd } = dcs;
    const password = secret(undefined, etcd.password_env, env);
    const tls = {
      ...(etcd.tls?.ca_file === undefined ? {} : { caFile: etcd.tls.ca_file }),
      ...(etcd.tls?.cert_file === undefined ? {} : { certFile: etcd.tls.cert_file }),
      ...(etcd.tls?.key_file === undefined ? {} : { keyFile: etcd.tls.key_file }),
    };
    dcsConfig = {
      namespace: dcs.namespace,
      scope: dcs.scope,
      etcd: {
        endpoints: etcd.endpoints,
        timeout: etcd.timeout,
        ...(etcd.user === undefined ? {} : { user: etcd.user }),
        ...(password === undefined ? {} : { password }),
        ...(Object.keys(tls).length === 0 ? {} : { tls }),
      },
    };
  }
  return {
    port: p.port,
    scheme: p.scheme,
    ...(p.ca_file === undefined ? {} : { caFile: p.ca_file }),
    interval: p.interval ?? doc.health.interval,
    timeout: p.timeout ?? doc.health.timeout,
    ...(dcsConfig === undefined ? {} : { dcs: dcsConfig }),
  };
}

export function toConfig(doc: ParsedDocument, env: NodeJS.ProcessEnv): Config {
  const { health, failover, logging, proxy, admin } = doc;
  const password = secret(health.password, health.password_env, env);
  const token = admin === undefined ? undefined : secret(admin.token, admin.token_env, env);
  const coordination = coordinationOf(doc, env);
  const patroni = patroniOf(doc, env);
  const config: Config = {
    listeners: doc.listeners.map((l) => ({
      name: l.name,
      host: l.bind.host,
      port: l.bind.port,
      route: l.route,
      balance: l.balance,
      fallback: l.fallback ?? 'none',
      maxConnections: l.max_connections,
    })),
    backends: doc.backends.map((b) => ({
      name: b.name,
      host: b.host,
      port: b.port,
      weight: b.weight,
      backup: b.backup,
      ...(b.role === undefined ? {} : { role: b.role }),
      ...(b.patroni_port === undefined ? {} : { patroniPort: b.patroni_port }),
    })),
    health: {
      check: health.check,
      user: health.user,
      ...(password === undefined ? {} : { password }),
      database: health.database,
      interval: health.interval,
      fastInterval: health.fast_interval ?? Math.min(DEFAULT_FAST_INTERVAL_MS, health.interval),
      downInterval: health.down_interval,
      timeout: health.timeout,
      rise: health.rise,
      fall: health.fall,
      jitter: health.jitter,
      maxReplicaLag: health.max_replica_lag ?? {},
      ...(health.agent === undefined ? {} : { agent: { port: health.agent.port, interval: health.agent.interval, timeout: health.agent.timeout } }),
      ...(patroni === undefined ? {} : { patroni }),
    },
    failover: {
      queueTimeout: failover.queue_timeout,
      queueSize: failover.queue_size,
      mode: failover.mode,
      onDown: failover.on_down,
      promoteAfter: failover.promote_after,
      maxLagOnFailover: failover.max_lag_on_failover,
      drainTimeout: failover.drain_timeout,
      watchInterval: failover.watch_interval,
    },
    tls: tlsOf(doc),
    auth: authOf(doc, env),
    logging: { level: logging.level, format: logging.format },
    proxy: {
      clientLoginTimeout: proxy.client_login_timeout,
      connectTimeout: proxy.connect_timeout,
      startupTimeout: proxy.startup_timeout,
      maxConcurrentStartups: proxy.max_concurrent_startups,
      shutdownTimeout: proxy.shutdown_timeout,
      clientKeepalive: { idleMs: proxy.client_keepalive.idle, intervalMs: proxy.client_keepalive.interval, count: proxy.client_keepalive.count },
      clientUserTimeout: proxy.client_user_timeout,
      clientIdleTimeout: proxy.client_idle_timeout,
      unknownCancelRate: proxy.unknown_cancel_rate,
    },
    sessions: { survive: doc.sessions.survive },
    hooks: hooksOf(doc),
    ...(admin === undefined ? {} : { admin: { host: admin.bind.host, port: admin.bind.port, ...(token === undefined ? {} : { token }) } }),
    host: hostOf(doc),
    ...(coordination === undefined ? {} : { coordination }),
  };
  return deepFreeze(config);
}
