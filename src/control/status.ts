// Builds the StatusSnapshot (GET /status, the status page, `pgwarden status`) from the live
// topology and listeners. Read-only.
import type { RecentEvent } from '../events';
import type { HostStatus } from '../host/status';
import type { BackendStatus, ListenerStatus, PatroniStatus, StatusSnapshot } from '../routing/status-snapshot';
import { candidatesFor } from '../routing/candidates';
import type { BackendView, Topology } from '../routing/topology';
import type { StartupSlots } from '../routing/startup-slots';
import type { Listener } from '../proxy/listener';

export interface StatusSources {
  version: string;
  startedAt: Date;
  topology: Topology;
  listeners: readonly Listener[];
  /** Absent: no startup is counted (status built without a running proxy). */
  startups?: StartupSlots;
  events: RecentEvent[];
  host?: HostStatus;
  agentReports: ReadonlyMap<string, { at: number; reachable: boolean; raw?: string }>;
}

function patroniStatus(m: NonNullable<BackendView['patroni']>): PatroniStatus {
  const { at, scheduledRestartAt, ...rest } = m;
  return { ...rest, at: new Date(at).toISOString(), ...(scheduledRestartAt !== undefined && { scheduledRestart: new Date(scheduledRestartAt).toISOString() }) };
}

export function buildStatus(src: StatusSources): StatusSnapshot {
  const primary = src.topology.primary()?.name;
  const backends: BackendStatus[] = src.topology.backends().map((v) => {
    const agent = src.agentReports.get(v.name);
    return {
      name: v.name,
      host: v.config.host,
      port: v.config.port,
      state: v.state,
      adminState: v.adminState,
      fenced: v.fenced,
      transitional: v.transitional,
      ...(v.role && { role: v.role }),
      isPrimary: v.name === primary,
      weight: v.config.weight,
      effectiveWeight: v.effectiveWeight,
      backup: v.config.backup,
      // A server that is not up has no current lag: its last one would only mislead.
      ...(v.state === 'up' && v.lagBytes !== undefined && { lagBytes: v.lagBytes }),
      ...(v.state === 'up' && v.lagSeconds !== undefined && { lagSeconds: v.lagSeconds }),
      sessions: v.activeSessions,
      startupsInFlight: src.startups?.count(v.name) ?? 0,
      ...(v.lastCheck && {
        lastCheck: {
          ok: v.lastCheck.ok,
          at: new Date(v.lastCheck.at).toISOString(),
          durationMs: v.lastCheck.durationMs,
          ...(!v.lastCheck.ok && { layer: v.lastCheck.layer, message: v.lastCheck.message }),
        },
      }),
      ...(agent && { agent: { at: new Date(agent.at).toISOString(), report: agent.raw ?? '', reachable: agent.reachable } }),
      ...(v.patroni && { patroni: patroniStatus(v.patroni) }),
      ...(v.patroniDrain !== undefined && { patroniDrain: v.patroniDrain }),
    };
  });
  const listeners: ListenerStatus[] = src.listeners.map((l) => {
    const cfg = l.config;
    const set = candidatesFor(cfg, src.topology);
    return {
      name: cfg.name,
      bind: `${cfg.host}:${cfg.port}`,
      route: cfg.route,
      balance: cfg.balance,
      fallback: cfg.fallback,
      sessions: l.sessions.size,
      queued: l.queued,
      hasCandidate: set.backends.length > 0,
      ...(set.reason !== undefined && { reason: set.reason }),
    };
  });
  return {
    version: src.version,
    startedAt: src.startedAt.toISOString(),
    ...(primary !== undefined && { primary }),
    listeners,
    backends,
    events: src.events,
    ...(src.host && { host: src.host }),
  };
}
