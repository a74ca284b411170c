// The human listing `pgwarden check` prints: what pgwarden would listen on, where it would
// send sessions and how it would check servers. Durations and sizes are written back in the
// units a config file uses. Secrets (the check password, the admin token, the etcd password,
// hook environment values) are never printed: only whether a secret is set, and only the names of variables.

import { HOOK_EVENTS } from './schema';
import type { BackendConfig, Config, HookConfig, HostThreshold, ListenerConfig, TlsMode } from './types';
import { formatDuration, formatSize } from './units';

function address(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Left-aligned columns, two spaces apart, so a list reads as a table. */
function table(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => `  ${row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ')}`.trimEnd());
}

function listenerRow(l: ListenerConfig): string[] {
  return [
    l.name,
    address(l.host, l.port),
    `route=${l.route}`,
    `balance=${l.balance}`,
    `fallback=${l.fallback}`,
    `max_connections=${l.maxConnections === 0 ? 'unlimited' : l.maxConnections}`,
  ];
}

function backendRow(b: BackendConfig): string[] {
  return [b.name, address(b.host, b.port), `weight=${b.weight}`, b.backup ? 'backup' : '', b.role === undefined ? '' : `role=${b.role}`, b.patroniPort === undefined ? '' : `patroni_port=${b.patroniPort}`];
}

function lagLimit(config: Config): string {
  const { bytes, ms } = config.health.maxReplicaLag;
  if (bytes !== undefined) return formatSize(bytes);
  if (ms !== undefined) return formatDuration(ms);
  return 'no limit';
}

/** An argv list as a person would type it; arguments with spaces or quotes are quoted. */
function commandLine(command: readonly string[]): string {
  return command.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : JSON.stringify(arg))).join(' ');
}

function hookLine(hook: HookConfig): string {
  const names = Object.keys(hook.env);
  return `${commandLine(hook.command)}  (timeout ${formatDuration(hook.timeout)}${names.length === 0 ? '' : `, env ${names.join(' ')}`})`;
}

function hookLines(config: Config): string[] {
  const lines: string[] = [];
  for (const event of HOOK_EVENTS) {
    const hooks = config.hooks[event] ?? [];
    hooks.forEach((hook, i) => lines.push(`  ${i === 0 ? `${event}:` : ''.padEnd(event.length + 1)} ${hookLine(hook)}`));
  }
  return lines.length === 0 ? ['hooks: none'] : ['hooks:', ...lines];
}

function thresholdText(metric: string, threshold: HostThreshold | undefined): string[] {
  return threshold === undefined ? [] : [`${metric} above ${threshold.above}% for ${formatDuration(threshold.for)}`];
}

function adminLines(config: Config): string[] {
  const { admin } = config;
  if (admin === undefined) return ['admin: off (no `admin` section)'];
  return [
    `admin: ${address(admin.host, admin.port)}  token: ${admin.token === undefined ? '(none)' : '(set)'}`,
    ...(admin.token === undefined ? ['  warning: without a token the admin API refuses every change (drain, switchover, reload)'] : []),
  ];
}

function coordinationLines(config: Config): string[] {
  const { coordination } = config;
  if (coordination === undefined) return ['coordination: off (this instance acts alone)'];
  const { etcd } = coordination;
  const quorum = Math.floor(coordination.members.length / 2) + 1;
  const tls = etcd.tls === undefined ? [] : [`ca_file ${etcd.tls.caFile ?? '(system CAs)'}`, ...(etcd.tls.certFile === undefined ? [] : [`cert_file ${etcd.tls.certFile}`])];
  return [
    `coordination: ${coordination.name} of ${coordination.members.join(', ')} (quorum ${quorum})  ttl: ${formatDuration(coordination.ttl)}  on_etcd_loss: ${coordination.onEtcdLoss}`,
    `  etcd: ${etcd.endpoints.join(' ')}  prefix: ${etcd.prefix}  timeout: ${formatDuration(etcd.timeout)}`,
    ...(etcd.user === undefined ? [] : [`  user: ${etcd.user}  password: ${etcd.password === undefined ? '(none)' : '(set)'}`]),
    ...(tls.length === 0 ? [] : [`  tls: ${tls.join('  ')}`]),
    ...(coordination.advertise === undefined ? [] : [`  advertise: ${coordination.advertise} (where the others send cancels for keys of listeners bound to a wildcard)`]),
    ...unadvertised(config),
  ];
}

/** auth.mode proxy: listeners the other instances cannot send this one's cancels to. */
function unadvertised(config: Config): string[] {
  if (config.auth.mode !== 'proxy' || config.coordination?.advertise !== undefined) return [];
  const wild = config.listeners.filter((l) => l.host === '0.0.0.0' || l.host === '::').map((l) => l.name);
  if (wild.length === 0) return [];
  return [`  warning: ${wild.join(', ')} bind a wildcard and \`advertise\` is not set: a CancelRequest for a key issued here that reaches another instance is not forwarded here`];
}

const TLS_MODE_TEXT: Readonly<Record<TlsMode, string>> = {
  passthrough: "passthrough (a client's TLS goes through to the server)",
  disable: 'disable (a client asking for TLS is told no)',
  terminate: 'terminate (pgwarden does TLS with clients itself)',
};

function tlsLines(config: Config): string[] {
  const { tls } = config;
  const lines = [`tls: ${TLS_MODE_TEXT[tls.mode]}`];
  if (tls.mode === 'terminate') {
    lines.push(
      `  cert_file: ${tls.certFile ?? '(none)'}  key_file: ${tls.keyFile ?? '(none)'}  min_version: ${tls.minVersion}`,
      `  client_cert: ${tls.clientCert}${tls.caFile === undefined ? '' : ` (ca_file ${tls.caFile})`}  ` +
        `client: ${tls.client} (${tls.client === 'allow' ? 'clients without TLS are served in plain text' : 'clients without TLS are refused'})`,
    );
  }
  const ca = tls.server === 'verify-ca' || tls.server === 'verify-full' ? `  server_ca_file: ${tls.serverCaFile ?? '(system CAs)'}` : '';
  const uses = tls.mode === 'terminate' ? 'sessions, health checks, pg_promote' : 'health checks, pg_promote';
  lines.push(`  server: ${tls.server}${ca}  (${uses})`);
  return lines;
}

function authLines(config: Config): string[] {
  const { auth } = config;
  if (auth.mode === 'passthrough') return ['auth: passthrough (clients authenticate with the servers end to end)'];
  return [
    'auth: proxy (pgwarden authenticates clients itself, then logs in to the servers as them)',
    `  user: ${auth.user ?? '(none)'}  password: ${auth.password === undefined ? '(none)' : '(set)'}  database: ${auth.database}`,
    `  query: ${auth.query}`,
  ];
}

function failoverLines(config: Config): string[] {
  const { failover } = config;
  const promote =
    failover.mode === 'promote'
      ? `  promote the most caught-up replica after ${formatDuration(failover.promoteAfter)} without a primary, never one more than ${formatSize(failover.maxLagOnFailover)} behind`
      : '  follow whichever server reports it is primary (promotion is left to an operator or orchestrator)';
  return [
    `failover: mode: ${failover.mode}  on_down: ${failover.onDown}  drain_timeout: ${formatDuration(failover.drainTimeout)}`,
    promote,
    `  while no server can take a session, queue up to ${failover.queueSize} per listener for at most ${formatDuration(failover.queueTimeout)}`,
  ];
}

function patroniLines(config: Config): string[] {
  const p = config.health.patroni;
  if (p === undefined) return [];
  const dcs = p.dcs;
  return [
    `  patroni: ${p.scheme}://<backend host>:${p.port}/patroni  interval: ${formatDuration(p.interval)}  timeout: ${formatDuration(p.timeout)}`,
    dcs === undefined
      ? '    dcs: none (no advance drain on a switchover)'
      : `    dcs: etcd ${dcs.etcd.endpoints.join(', ')}  key: ${dcs.namespace}/${dcs.scope}/failover  user: ${dcs.etcd.user ?? '(none)'}`,
  ];
}

export function describeConfig(config: Config): string {
  const { health, proxy } = config;
  const lines: string[] = [];

  lines.push(`listeners (${config.listeners.length}):`, ...table(config.listeners.map(listenerRow)));
  lines.push(`backends (${config.backends.length}):`, ...table(config.backends.map(backendRow)));

  lines.push(`health: ${health.check} check`);
  if (health.check === 'postgres') {
    lines.push(`  user: ${health.user}  database: ${health.database}  password: ${health.password === undefined ? '(none)' : '(set)'}`);
  } else {
    lines.push('  roles come from each backend\'s `role` (a tcp check cannot see them)');
  }
  lines.push(
    `  interval: ${formatDuration(health.interval)}  fast_interval: ${formatDuration(health.fastInterval)}  ` +
      `down_interval: ${formatDuration(health.downInterval)}  timeout: ${formatDuration(health.timeout)}`,
    `  rise: ${health.rise}  fall: ${health.fall}  jitter: ${Math.round(health.jitter * 1000) / 10}%  max_replica_lag: ${lagLimit(config)}`,
    health.agent === undefined
      ? '  agent: none'
      : `  agent: port ${health.agent.port}  interval: ${formatDuration(health.agent.interval)}  timeout: ${formatDuration(health.agent.timeout)}`,
    ...patroniLines(config),
  );

  const { thresholds } = config.host;
  const limits = [...thresholdText('cpu', thresholds.cpu), ...thresholdText('memory', thresholds.memory), ...thresholdText('disk', thresholds.disk)];
  lines.push(
    ...failoverLines(config),
    config.sessions.survive === 'on'
      ? 'sessions: survive: on  (an idle session whose server goes away moves to the new server; the client sees a pause)'
      : 'sessions: survive: off  (sessions of a server that goes away are closed with 57P01)',
    ...hookLines(config),
    ...adminLines(config),
    ...coordinationLines(config),
    `host: sampled every ${formatDuration(config.host.interval)}; thresholds: ${limits.length === 0 ? 'none' : limits.join(', ')}`,
    `proxy: client_login_timeout: ${formatDuration(proxy.clientLoginTimeout)}  connect_timeout: ${formatDuration(proxy.connectTimeout)}  ` +
      `startup_timeout: ${formatDuration(proxy.startupTimeout)}  ` +
      `max_concurrent_startups: ${proxy.maxConcurrentStartups === 0 ? 'no limit' : `${proxy.maxConcurrentStartups} per server`}  ` +
      `shutdown_timeout: ${formatDuration(proxy.shutdownTimeout)}`,
    ...tlsLines(config),
    ...authLines(config),
    `logging: ${config.logging.level} (${config.logging.format})`,
  );
  return lines.join('\n');
}
