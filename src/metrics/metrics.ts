// Prometheus metrics for one running pgwarden, on a private prom-client Registry.
//
// Every metric is declared once, in `declareMetrics` below (Envoy's "stats declared in one
// list"). Two kinds of source feed them:
// - gauges that describe the current view (backend state, lag, sessions, queue) are computed at
//   scrape time from the running proxy's status() (MetricsSource below: the App, read through
//   the part of its MetricsView the gauges need) in a `collect()` callback, so they can never
//   drift from what /status says;
// - counters and histograms are fed by events on the Bus as they happen.
//
// Labels are low-cardinality only (backend, role, listener, state, layer, event, outcome,
// reason, sqlstate, mount/iface/resource for host metrics, and member for the configured
// coordination members): never a client address, a user or a query. Enumerations are exported HAProxy-exporter style: one series per possible value,
// 1 for the current one and 0 for the others, so `pgwarden_backend_state{state="down"} == 1`
// is an alert rule and no numeric code has to be looked up.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Bus, BusEvents } from '../events';
import { CHECK_PHASES } from '../health/types';
import type { HostStatus } from '../host/status';

/**
 * What the gauges read at scrape time: the part of the status snapshot
 * (routing/status-snapshot.ts, MetricsView) that metrics shows. Declared here so metrics
 * depends on nothing above it; a MetricsView is one, structurally.
 */
export interface MetricsView {
  primary?: string;
  backends: readonly BackendReading[];
  listeners: readonly ListenerReading[];
  host?: HostStatus;
  coordination?: CoordinationReading;
}

/** This instance's view of the instances coordinating through etcd (`coordination:`). */
export interface CoordinationReading {
  isLeader: boolean;
  /** Absent until this instance has read the cluster state. */
  epoch?: number;
  etcd: { reachable: boolean };
  /** Every configured member; lagging = alive with an acknowledged epoch behind the current one. */
  members: readonly { name: string; alive: boolean; lagging: boolean }[];
}

export interface BackendReading {
  name: string;
  state: 'init' | 'up' | 'down';
  adminState: 'ready' | 'drain' | 'maint';
  role?: 'primary' | 'replica';
  isPrimary: boolean;
  fenced: boolean;
  transitional: boolean;
  lagBytes?: number;
  lagSeconds?: number;
  weight: number;
  effectiveWeight: number;
  sessions: number;
  startupsInFlight: number;
  lastCheck?: { ok: boolean };
  /** `health.patroni`: the member as GET /patroni showed it last. */
  patroni?: { reachable: boolean; state?: string; timeline?: number; pendingRestart: boolean };
  /** Set while Patroni is taking the backend away (no new sessions). */
  patroniDrain?: string;
}

export interface ListenerReading {
  name: string;
  sessions: number;
  queued: number;
  hasCandidate: boolean;
}

/** The running proxy, as metrics sees it. */
export interface MetricsSource {
  status(): MetricsView;
}

const BACKEND_STATES: readonly BackendReading['state'][] = ['init', 'up', 'down'];
const ADMIN_STATES: readonly BackendReading['adminState'][] = ['ready', 'drain', 'maint'];
/** `unknown` until the first successful check tells the role. */
const ROLES = ['primary', 'replica', 'unknown'] as const;
/** Patroni's member states worth a series of their own; any other is `other`, no answer `unreachable`. */
const PATRONI_STATES = ['running', 'streaming', 'starting', 'stopping', 'stopped', 'restarting', 'crashed', 'other', 'unreachable'] as const;

function patroniState(p: NonNullable<BackendReading['patroni']>): (typeof PATRONI_STATES)[number] {
  if (!p.reachable) return 'unreachable';
  return (PATRONI_STATES as readonly string[]).includes(p.state ?? '') ? (p.state as (typeof PATRONI_STATES)[number]) : 'other';
}

/** Seconds. Checks and queue waits are usually milliseconds; failover events are seconds. */
const CHECK_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** A phase of a check can be far below a millisecond (the query on a kept connection on loopback). */
const CHECK_PHASE_BUCKETS = [0.0001, 0.00025, 0.0005, ...CHECK_BUCKETS];
const QUEUE_BUCKETS = [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const DETECTION_BUCKETS = [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60];
const SWITCHOVER_BUCKETS = [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300];
const HOOK_BUCKETS = [0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300];
/** A handshake is milliseconds on a quiet cluster; a switchover's includes the drain. */
const HANDSHAKE_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120];

/** The whole list. `snap` returns the status snapshot of the scrape in progress. */
function declareMetrics(registry: Registry, snap: () => MetricsView) {
  const registers = [registry];
  /** A gauge recomputed from the snapshot at every scrape; reset first so removed backends vanish. */
  function viewGauge<L extends string>(name: string, help: string, labelNames: readonly L[], fill: (g: Gauge<L>, s: MetricsView) => void): Gauge<L> {
    return new Gauge<L>({
      name,
      help,
      labelNames,
      registers,
      collect() {
        this.reset();
        fill(this, snap());
      },
    });
  }
  const perBackend = (name: string, help: string, value: (b: BackendReading) => number | undefined) =>
    viewGauge(name, help, ['backend'], (g, s) => {
      for (const b of s.backends) {
        const v = value(b);
        if (v !== undefined) g.set({ backend: b.name }, v);
      }
    });
  /**
   * One unlabelled series from the coordination view. Without `coordination:` (or while the
   * value is unknown) the series is removed, not 0: reset() leaves an unlabelled gauge at 0, and
   * an instance that does not coordinate must not read as "etcd unreachable" or "not leader".
   */
  const perInstance = (name: string, help: string, value: (c: CoordinationReading) => number | undefined) =>
    viewGauge(name, help, [], (g, s) => {
      const v = s.coordination && value(s.coordination);
      if (v === undefined) g.remove();
      else g.set(v);
    });

  return {
    // ---- backends: the current view (from status()) ----
    backendState: viewGauge('pgwarden_backend_state', 'Health state from the checks: 1 for the current state (init, up, down), 0 for the others.', ['backend', 'state'], (g, s) => {
      for (const b of s.backends) for (const st of BACKEND_STATES) g.set({ backend: b.name, state: st }, b.state === st ? 1 : 0);
    }),
    backendAdminState: viewGauge('pgwarden_backend_admin_state', 'Operator state: 1 for the current one (ready, drain, maint), 0 for the others.', ['backend', 'state'], (g, s) => {
      for (const b of s.backends) for (const st of ADMIN_STATES) g.set({ backend: b.name, state: st }, b.adminState === st ? 1 : 0);
    }),
    backendRole: viewGauge('pgwarden_backend_role', 'Role reported by the last good check: 1 for the current role (primary, replica, unknown), 0 for the others.', ['backend', 'role'], (g, s) => {
      for (const b of s.backends) for (const r of ROLES) g.set({ backend: b.name, role: r }, (b.role ?? 'unknown') === r ? 1 : 0);
    }),
    backendIsPrimary: perBackend('pgwarden_backend_is_primary', '1 for the backend that takes writes now, 0 for the others.', (b) => Number(b.isPrimary)),
    backendFenced: perBackend('pgwarden_backend_fenced', '1 when the split-brain rule keeps writes away from this backend.', (b) => Number(b.fenced)),
    backendTransitional: perBackend('pgwarden_backend_transitional', '1 while rise/fall checks are changing the state.', (b) => Number(b.transitional)),
    backendLagBytes: perBackend('pgwarden_backend_replication_lag_bytes', 'WAL replay distance behind the primary (replicas; absent when unknown).', (b) => b.lagBytes),
    backendLagSeconds: perBackend('pgwarden_backend_replication_lag_seconds', 'Seconds since the last replayed transaction (replicas; absent when unknown).', (b) => b.lagSeconds),
    backendWeight: perBackend('pgwarden_backend_weight', 'Configured weight.', (b) => b.weight),
    backendEffectiveWeight: perBackend('pgwarden_backend_effective_weight', 'Weight after the agent report (equals the weight without an agent).', (b) => b.effectiveWeight),
    backendSessions: perBackend('pgwarden_backend_active_sessions', 'Client sessions connected to this backend now.', (b) => b.sessions),
    backendStartups: perBackend('pgwarden_backend_startups_in_flight', 'Session startups to this backend in flight now (connect until ReadyForQuery), at most proxy.max_concurrent_startups.', (b) => b.startupsInFlight),
    backendLastCheckOk: perBackend('pgwarden_backend_last_check_success', '1 when the last check succeeded, 0 when it failed (absent before the first).', (b) => (b.lastCheck ? Number(b.lastCheck.ok) : undefined)),
    patroniState: viewGauge('pgwarden_patroni_member_state', "health.patroni: the member's state in Patroni's REST API (GET /patroni), 1 for the current one (running, streaming, starting, stopping, stopped, restarting, crashed, other, unreachable), 0 for the others.", ['backend', 'state'], (g, s) => {
      for (const b of s.backends) if (b.patroni) for (const st of PATRONI_STATES) g.set({ backend: b.name, state: st }, patroniState(b.patroni) === st ? 1 : 0);
    }),
    patroniDraining: perBackend('pgwarden_patroni_draining', 'health.patroni: 1 while Patroni is taking this backend away (demote, restart, a switchover announced in its DCS) and it takes no new sessions.', (b) => (b.patroni || b.patroniDrain !== undefined ? Number(b.patroniDrain !== undefined) : undefined)),
    patroniPendingRestart: perBackend('pgwarden_patroni_pending_restart', 'health.patroni: 1 when Patroni reports that PostgreSQL needs a restart for a changed setting.', (b) => (b.patroni?.reachable ? Number(b.patroni.pendingRestart) : undefined)),
    patroniTimeline: perBackend('pgwarden_patroni_timeline', "health.patroni: the member's timeline as Patroni reports it.", (b) => b.patroni?.timeline),
    primaryKnown: viewGauge('pgwarden_primary_available', '1 when some backend is the primary, 0 while there is none.', [], (g, s) => g.set(s.primary ? 1 : 0)),

    // ---- backends: events ----
    checkDuration: new Histogram({ name: 'pgwarden_check_duration_seconds', help: 'Health check duration.', labelNames: ['backend'], buckets: CHECK_BUCKETS, registers }),
    checkPhase: new Histogram({ name: 'pgwarden_check_phase_seconds', help: 'Health check time by phase: connect (TCP), tls, auth (startup and authentication until ready for queries), query; a check on the kept connection has only query, and a failed check counts the phase it failed in.', labelNames: ['backend', 'phase'], buckets: CHECK_PHASE_BUCKETS, registers }),
    checks: new Counter({ name: 'pgwarden_checks_total', help: 'Health checks by result: layer is "ok" for a success, else the failure layer (L4CON, L4TOUT, L6TLS, L7AUTH, L7QUERY, L7TOUT; L7FULL and SOCKERR leave the state as it was).', labelNames: ['backend', 'layer'], registers }),
    rolePolls: new Counter({ name: 'pgwarden_role_polls_total', help: 'Role polls of healthy replicas while there is no primary or it fails its checks (failover.watch_interval), by what they saw (outcome): replica, primary or failed.', labelNames: ['backend', 'outcome'], registers }),
    stateChanges: new Counter({ name: 'pgwarden_backend_state_changes_total', help: 'Health state changes, by the state entered.', labelNames: ['backend', 'state'], registers }),

    // ---- listeners ----
    listenerSessions: viewGauge('pgwarden_listener_active_sessions', 'Client sessions open on this listener now.', ['listener'], (g, s) => {
      for (const l of s.listeners) g.set({ listener: l.name }, l.sessions);
    }),
    listenerQueued: viewGauge('pgwarden_listener_queued_sessions', 'Sessions waiting for a backend now.', ['listener'], (g, s) => {
      for (const l of s.listeners) g.set({ listener: l.name }, l.queued);
    }),
    listenerHasCandidate: viewGauge('pgwarden_listener_has_candidate', '1 when some backend can take a new session on this listener now.', ['listener'], (g, s) => {
      for (const l of s.listeners) g.set({ listener: l.name }, Number(l.hasCandidate));
    }),
    sessions: new Counter({ name: 'pgwarden_sessions_total', help: 'Sessions that reached a backend.', labelNames: ['listener', 'backend'], registers }),
    queueWait: new Histogram({ name: 'pgwarden_queue_wait_seconds', help: 'Time sessions waited for a backend, by how the wait ended (served, timeout, full, gone, shutdown).', labelNames: ['listener', 'outcome'], buckets: QUEUE_BUCKETS, registers }),
    rejected: new Counter({ name: 'pgwarden_sessions_rejected_total', help: 'Clients that got an ErrorResponse instead of a session, by SQLSTATE.', labelNames: ['listener', 'sqlstate'], registers }),
    bytesFromClients: new Counter({ name: 'pgwarden_client_received_bytes_total', help: 'Bytes received from clients (counted when a session ends).', labelNames: ['listener'], registers }),
    bytesToClients: new Counter({ name: 'pgwarden_client_sent_bytes_total', help: 'Bytes sent to clients (counted when a session ends).', labelNames: ['listener'], registers }),
    sessionsEnded: new Counter({ name: 'pgwarden_sessions_ended_total', help: 'Sessions (and refused connections) that ended, by cause (client-terminate, client-closed, server-closed, drained, login-timeout …).', labelNames: ['listener', 'cause'], registers }),
    cancels: new Counter({ name: 'pgwarden_cancel_requests_total', help: 'CancelRequests: exact (the key was known), forwarded (another coordinated instance issued the key: sent there), fanned-out (unknown key, sent to every backend) or dropped (unknown_cancel_rate reached).', labelNames: ['listener', 'outcome'], registers }),
    sessionDuration: new Histogram({ name: 'pgwarden_session_duration_seconds', help: 'Duration of ended sessions.', labelNames: ['listener'], buckets: [0.01, 0.1, 1, 10, 60, 600, 3600, 86400], registers }),

    // ---- failover ----
    primaryChanges: new Counter({ name: 'pgwarden_primary_changes_total', help: 'Primary changes, by the new primary ("none" when the primary was lost).', labelNames: ['backend'], registers }),
    fenced: new Counter({ name: 'pgwarden_fencing_events_total', help: 'Backends fenced by the split-brain rule.', labelNames: ['backend'], registers }),
    detection: new Histogram({ name: 'pgwarden_failure_detection_seconds', help: 'From the first failed check to the backend being marked down.', labelNames: ['backend'], buckets: DETECTION_BUCKETS, registers }),
    switchover: new Histogram({ name: 'pgwarden_switchover_duration_seconds', help: 'Planned switchovers, by outcome (ok, failed).', labelNames: ['outcome'], buckets: SWITCHOVER_BUCKETS, registers }),
    closedByProxy: new Counter({ name: 'pgwarden_sessions_closed_by_proxy_total', help: 'Sessions pgwarden closed itself, by reason (down, maint, switchover, reload, shutdown, fenced, patroni).', labelNames: ['listener', 'reason'], registers }),
    closedInTransaction: new Counter({ name: 'pgwarden_sessions_closed_in_transaction_total', help: 'Of those, sessions that were inside a transaction when closed.', labelNames: ['listener', 'reason'], registers }),
    moved: new Counter({ name: 'pgwarden_sessions_moved_total', help: 'sessions.survive: idle sessions whose server went away, by result: moved to a new server, or not_moved (closed as without survive; the log says why).', labelNames: ['listener', 'result'], registers }),

    // ---- coordination (several instances through etcd; no series without `coordination:`) ----
    coordLeader: perInstance('pgwarden_coordination_leader', '1 while this instance is the coordination leader, 0 otherwise.', (c) => Number(c.isLeader)),
    coordEpoch: perInstance('pgwarden_coordination_epoch', 'Epoch of the cluster state this instance last read (absent before the first read).', (c) => c.epoch),
    coordEtcdReachable: perInstance('pgwarden_coordination_etcd_reachable', '1 while this instance holds its etcd lease, 0 once its deadline passed.', (c) => Number(c.etcd.reachable)),
    coordMembersAlive: perInstance('pgwarden_coordination_members_alive', 'Configured members with a live etcd lease, as this instance sees them.', (c) => c.members.filter((m) => m.alive).length),
    coordMemberLagging: viewGauge('pgwarden_coordination_member_lagging', '1 when that member is alive and has not acknowledged the current epoch yet, 0 otherwise.', ['member'], (g, s) => {
      for (const m of s.coordination?.members ?? []) g.set({ member: m.name }, Number(m.lagging));
    }),
    coordHandshake: absentUntilObserved(new Histogram({ name: 'pgwarden_coordination_handshake_seconds', help: 'Failover and switchover handshakes this instance led as the leader: new epoch published → every live member acknowledged.', buckets: HANDSHAKE_BUCKETS, registers })),

    // ---- hooks, host, config ----
    hookRuns: new Counter({ name: 'pgwarden_hook_runs_total', help: 'Hook commands run, by event and outcome (ok, failed, timeout, error).', labelNames: ['event', 'outcome'], registers }),
    hookDuration: new Histogram({ name: 'pgwarden_hook_duration_seconds', help: 'Hook command duration.', labelNames: ['event'], buckets: HOOK_BUCKETS, registers }),
    hostAlerts: new Counter({ name: 'pgwarden_host_threshold_alerts_total', help: 'Host thresholds crossed (raised alerts), by resource (cpu, memory, disk:<mount>).', labelNames: ['resource'], registers }),
    hostAlertActive: new Gauge({ name: 'pgwarden_host_threshold_active', help: '1 while a host threshold is crossed.', labelNames: ['resource'], registers }),
    hostCpu: viewGauge('pgwarden_host_cpu_load_percent', 'Host CPU load (absent without host sampling).', [], (g, s) => s.host && g.set(s.host.cpuLoadPercent)),
    hostMemory: viewGauge('pgwarden_host_memory_used_percent', 'Host memory in use (absent without host sampling).', [], (g, s) => s.host && g.set(s.host.memoryUsedPercent)),
    hostDisk: viewGauge('pgwarden_host_disk_used_percent', 'Filesystem space in use.', ['mount'], (g, s) => {
      for (const d of s.host?.disks ?? []) g.set({ mount: d.mount }, d.usedPercent);
    }),
    hostNetRx: viewGauge('pgwarden_host_network_receive_bytes_per_second', 'Network receive rate.', ['iface'], (g, s) => {
      for (const n of s.host?.network ?? []) g.set({ iface: n.iface }, n.rxBytesPerSec);
    }),
    hostNetTx: viewGauge('pgwarden_host_network_transmit_bytes_per_second', 'Network transmit rate.', ['iface'], (g, s) => {
      for (const n of s.host?.network ?? []) g.set({ iface: n.iface }, n.txBytesPerSec);
    }),
    reloads: new Counter({ name: 'pgwarden_config_reloads_total', help: 'Configuration reloads, by outcome (ok, failed).', labelNames: ['outcome'], registers }),
    events: new Counter({ name: 'pgwarden_events_total', help: 'Status timeline events, by event name (backend.down, primary.changed, ...).', labelNames: ['event'], registers }),
  };
}

/** prom-client starts an unlabelled histogram with an all-zero series; drop it until the first observe(). */
function absentUntilObserved<T extends Histogram>(h: T): T {
  h.reset();
  return h;
}

export type MetricSet = ReturnType<typeof declareMetrics>;

type Handlers = { [K in keyof BusEvents]?: (e: BusEvents[K]) => void };

export class Metrics {
  readonly registry = new Registry();
  private readonly m: MetricSet;
  private readonly handlers: Handlers;
  private snapshot?: MetricsView;
  private closed = false;

  constructor(private readonly bus: Bus, private readonly source: MetricsSource) {
    this.m = declareMetrics(this.registry, () => this.scrapeSnapshot());
    // Event-loop lag is sampled once a second, not prom-client's default every 10 ms: each sample
    // is a timer wake-up, and on a small VM one costs ~0.15 ms of CPU (100 Hz kept an idle
    // pgwarden at ~2 % of a core, 10 Hz at ~0.15 %). A stall still shows in full: it delays the
    // pending sample by its whole length, so max and high percentiles see it at any rate.
    collectDefaultMetrics({ register: this.registry, prefix: 'pgwarden_', eventLoopMonitoringPrecision: 1000 });
    this.handlers = this.busHandlers();
    for (const [name, fn] of Object.entries(this.handlers)) bus.on(name as keyof BusEvents, fn as (e: unknown) => void);
  }

  /** Stop listening to the bus and drop every series. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const [name, fn] of Object.entries(this.handlers)) this.bus.off(name as keyof BusEvents, fn as (e: unknown) => void);
    this.registry.clear();
  }

  /**
   * One status() per scrape, not one per gauge: prom-client calls every `collect()`
   * synchronously in one pass of Registry.metrics(), so a snapshot cached until the next
   * microtask is shared by exactly that pass.
   */
  private scrapeSnapshot(): MetricsView {
    if (this.snapshot === undefined) {
      this.snapshot = this.source.status();
      queueMicrotask(() => (this.snapshot = undefined));
    }
    return this.snapshot;
  }

  private busHandlers(): Handlers {
    const m = this.m;
    const seconds = (ms: number) => ms / 1000;
    return {
      check: ({ backend, result }) => {
        m.checkDuration.observe({ backend }, seconds(result.durationMs));
        for (const phase of CHECK_PHASES) {
          const ms = result.phases?.[phase];
          if (ms !== undefined) m.checkPhase.observe({ backend, phase }, seconds(ms));
        }
        m.checks.inc({ backend, layer: result.ok ? 'ok' : result.layer });
      },
      poll: ({ backend, result }) => m.rolePolls.inc({ backend, outcome: result.ok ? result.role : 'failed' }),
      'backend.state': ({ backend, to, detectionMs }) => {
        m.stateChanges.inc({ backend, state: to });
        if (to === 'down' && detectionMs !== undefined) m.detection.observe({ backend }, seconds(detectionMs));
      },
      'session.start': ({ listener, backend }) => m.sessions.inc({ listener, backend }),
      'session.end': ({ listener, cause, durationMs, bytesFromClient, bytesToClient }) => {
        m.sessionsEnded.inc({ listener, cause });
        m.bytesFromClients.inc({ listener }, bytesFromClient);
        m.bytesToClients.inc({ listener }, bytesToClient);
        m.sessionDuration.observe({ listener }, seconds(durationMs));
      },
      'session.rejected': ({ listener, sqlstate }) => m.rejected.inc({ listener, sqlstate }),
      'cancel.forwarded': ({ listener, outcome }) => m.cancels.inc({ listener, outcome }),
      'session.dequeued': ({ listener, waitMs, outcome }) => m.queueWait.observe({ listener, outcome }, seconds(waitMs)),
      'session.closed_by_proxy': ({ listener, reason, inTransaction }) => {
        m.closedByProxy.inc({ listener, reason });
        if (inTransaction) m.closedInTransaction.inc({ listener, reason });
      },
      'session.moved': ({ listener, result }) => m.moved.inc({ listener, result }),
      'primary.changed': ({ to }) => m.primaryChanges.inc({ backend: to ?? 'none' }),
      'backend.fenced': ({ backend }) => m.fenced.inc({ backend }),
      'coordination.handshake': ({ durationMs }) => m.coordHandshake.observe(seconds(durationMs)),
      'switchover.done': ({ ok, durationMs }) => m.switchover.observe({ outcome: ok ? 'ok' : 'failed' }, seconds(durationMs)),
      'hook.run': ({ event, outcome, durationMs }) => {
        m.hookRuns.inc({ event, outcome });
        m.hookDuration.observe({ event }, seconds(durationMs));
      },
      'host.threshold': ({ metric, crossed }) => {
        if (crossed) m.hostAlerts.inc({ resource: metric });
        m.hostAlertActive.set({ resource: metric }, crossed ? 1 : 0);
      },
      'config.reload': ({ ok }) => m.reloads.inc({ outcome: ok ? 'ok' : 'failed' }),
      timeline: ({ event }) => m.events.inc({ event }),
    };
  }
}
