// A backend's health checker as the app runs it: the probe health.check asks for (a PostgreSQL
// login over tls.server's TLS, or a TCP connect), the replica-role watch interval of the moment,
// and what a result feeds — the topology, the bus (metrics, status page), and the descriptor
// shortage watch when the check could not even open a socket. Used at start and by reload.
import type { BackendConfig, Config } from '../config/types';
import type { Bus } from '../events';
import { HealthChecker } from '../health/checker';
import { postgresProbe, type PostgresProbeOptions } from '../health/postgres-probe';
import { tcpProbe } from '../health/tcp-probe';
import type { Probe } from '../health/types';
import type { TlsFiles } from '../net/tls-credentials';
import type { Topology } from '../routing/topology';
import type { DescriptorShortage } from './descriptor-shortage';

export interface CheckerWiring {
  config(): Config;
  tlsFiles(): TlsFiles;
  /** The role watch's poll interval now (undefined: none). */
  watchInterval(): number | undefined;
  topology: Topology;
  bus: Bus;
  descriptors: DescriptorShortage;
}

export function backendChecker(b: BackendConfig, w: CheckerWiring): HealthChecker {
  const h = w.config().health;
  let checker: HealthChecker | undefined;
  const probe: Probe =
    h.check === 'postgres'
      ? postgresProbe(
          {
            host: b.host,
            port: b.port,
            user: h.user,
            password: h.password,
            database: h.database,
            timeoutMs: h.timeout,
            userTimeoutMs: h.timeout * h.fall,
            ...checkTls(w.tlsFiles(), b.host),
          },
          { onConnectionLost: (reason) => checker?.poke(`check connection lost: ${reason}`) },
        )
      : tcpProbe(b.host, b.port, h.timeout, b.role ?? 'primary');
  checker = new HealthChecker({ backend: b, health: h, probe });
  checker.watch(w.watchInterval());
  checker.on('poll', ({ result, checkNow }) => w.bus.emit('poll', { backend: b.name, result, checkNow }));
  checker.on('result', (status) => {
    w.topology.update(b.name, status);
    const r = status.lastResult;
    if (r && !r.ok && r.layer === 'SOCKERR') w.descriptors.hit(`check of ${b.name}`, undefined, r.message);
    if (r) w.bus.emit('check', { backend: b.name, result: r });
  });
  return checker;
}

/** tls.server for a check connection: options, and whether it may fall back to plain text (prefer). */
function checkTls(files: TlsFiles, host: string): Pick<PostgresProbeOptions, 'ssl' | 'sslFallback'> {
  const leg = files.serverLeg;
  const ssl = leg.options(host);
  return ssl === undefined ? {} : { ssl, sslFallback: leg.mode === 'prefer' };
}
