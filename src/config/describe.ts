// The human listing `pgwarden check` prints: what pgwarden would listen on, where it would
// send sessions and how it would check servers. Durations and sizes are written back in the
// units a config file uses. The check password is never printed, only whether one is set.

import type { BackendConfig, Config, ListenerConfig } from './types';
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
  return [b.name, address(b.host, b.port), `weight=${b.weight}`, b.backup ? 'backup' : '', b.role === undefined ? '' : `role=${b.role}`];
}

function lagLimit(config: Config): string {
  const { bytes, ms } = config.health.maxReplicaLag;
  if (bytes !== undefined) return formatSize(bytes);
  if (ms !== undefined) return formatDuration(ms);
  return 'no limit';
}

export function describeConfig(config: Config): string {
  const { health, failover, proxy } = config;
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
  );

  lines.push(
    `failover: while no server can take a session, queue up to ${failover.queueSize} per listener for at most ${formatDuration(failover.queueTimeout)}`,
    `proxy: client_login_timeout: ${formatDuration(proxy.clientLoginTimeout)}  connect_timeout: ${formatDuration(proxy.connectTimeout)}  ` +
      `shutdown_timeout: ${formatDuration(proxy.shutdownTimeout)}`,
    `tls: ${config.tls.mode}`,
    `logging: ${config.logging.level}`,
  );
  return lines.join('\n');
}
