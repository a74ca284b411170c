// Metrics against a fake status source and a real Bus: emit events, scrape the registry,
// parse the text exposition and check the values.
import t, { type Test } from 'tap';
import { Bus } from '../../src/events';
import { Metrics, type MetricsSource } from '../../src/metrics/metrics';
import type { BackendStatus, CoordinationStatus, StatusSnapshot } from '../../src/routing/status-snapshot';
import { coordinationStatus } from '../helpers/coordination-status';

function backend(name: string, over: Partial<BackendStatus> = {}): BackendStatus {
  return {
    name,
    host: '127.0.0.1',
    port: 5432,
    state: 'up',
    adminState: 'ready',
    fenced: false,
    transitional: false,
    role: 'replica',
    isPrimary: false,
    weight: 100,
    effectiveWeight: 100,
    backup: false,
    sessions: 0,
    startupsInFlight: 0,
    ...over,
  };
}

function fakeController(snapshot: StatusSnapshot): MetricsSource & { snapshot: StatusSnapshot; statusCalls: number } {
  return {
    snapshot,
    statusCalls: 0,
    status() {
      this.statusCalls++;
      return this.snapshot;
    },
  };
}

function baseSnapshot(): StatusSnapshot {
  return {
    version: '0.1.0',
    startedAt: new Date().toISOString(),
    primary: 'pg1',
    listeners: [
      { name: 'rw', bind: '127.0.0.1:6432', route: 'primary', balance: 'roundrobin', fallback: 'none', sessions: 3, queued: 0, hasCandidate: true },
      { name: 'ro', bind: '127.0.0.1:6433', route: 'replica', balance: 'roundrobin', fallback: 'none', sessions: 1, queued: 2, hasCandidate: false, reason: 'no replica' },
    ],
    backends: [
      backend('pg1', { role: 'primary', isPrimary: true, sessions: 3, lastCheck: { ok: true, at: new Date().toISOString(), durationMs: 2 } }),
      backend('pg2', { lagBytes: 1024, lagSeconds: 0.5, sessions: 1, effectiveWeight: 50, adminState: 'drain' }),
      backend('pg3', { state: 'down', role: undefined, lastCheck: { ok: false, at: new Date().toISOString(), durationMs: 1, layer: 'L4CON' } }),
    ],
    events: [],
  };
}

/** `name{a="x",b="y"} value` lines → value by `name{a="x",b="y"}` (labels sorted) and by bare name. */
async function scrape(m: Metrics): Promise<Map<string, number>> {
  const text = await m.registry.metrics();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`unparsable exposition line: ${line}`);
    const labels = [...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => `${l[1]}="${l[2]}"`).sort();
    out.set(labels.length ? `${match[1]}{${labels.join(',')}}` : match[1], Number(match[3]));
  }
  return out;
}

function setup(t: Test) {
  const bus = new Bus();
  const controller = fakeController(baseSnapshot());
  const metrics = new Metrics(bus, controller);
  t.teardown(() => metrics.close());
  return { bus, controller, metrics };
}

t.test('backend and listener gauges come from status() at scrape time', async (t) => {
  const { controller, metrics } = setup(t);
  let v = await scrape(metrics);
  t.equal(v.get('pgwarden_backend_state{backend="pg1",state="up"}'), 1);
  t.equal(v.get('pgwarden_backend_state{backend="pg1",state="down"}'), 0);
  t.equal(v.get('pgwarden_backend_state{backend="pg3",state="down"}'), 1);
  t.equal(v.get('pgwarden_backend_admin_state{backend="pg2",state="drain"}'), 1);
  t.equal(v.get('pgwarden_backend_admin_state{backend="pg2",state="ready"}'), 0);
  t.equal(v.get('pgwarden_backend_role{backend="pg1",role="primary"}'), 1);
  t.equal(v.get('pgwarden_backend_role{backend="pg3",role="unknown"}'), 1);
  t.equal(v.get('pgwarden_backend_is_primary{backend="pg1"}'), 1);
  t.equal(v.get('pgwarden_backend_is_primary{backend="pg2"}'), 0);
  t.equal(v.get('pgwarden_backend_replication_lag_bytes{backend="pg2"}'), 1024);
  t.equal(v.get('pgwarden_backend_replication_lag_seconds{backend="pg2"}'), 0.5);
  t.notOk(v.has('pgwarden_backend_replication_lag_bytes{backend="pg1"}'), 'no lag series when the lag is unknown');
  t.equal(v.get('pgwarden_backend_effective_weight{backend="pg2"}'), 50);
  t.equal(v.get('pgwarden_backend_weight{backend="pg2"}'), 100);
  t.equal(v.get('pgwarden_backend_active_sessions{backend="pg1"}'), 3);
  t.equal(v.get('pgwarden_backend_fenced{backend="pg1"}'), 0);
  t.equal(v.get('pgwarden_backend_last_check_success{backend="pg3"}'), 0);
  t.equal(v.get('pgwarden_primary_available'), 1);
  t.equal(v.get('pgwarden_listener_active_sessions{listener="rw"}'), 3);
  t.equal(v.get('pgwarden_listener_queued_sessions{listener="ro"}'), 2);
  t.equal(v.get('pgwarden_listener_has_candidate{listener="ro"}'), 0);

  controller.statusCalls = 0;
  controller.snapshot = { ...baseSnapshot(), primary: undefined, backends: [backend('pg1', { state: 'down', role: 'primary' })] };
  v = await scrape(metrics);
  t.equal(controller.statusCalls, 1, 'one status() per scrape, shared by every gauge');
  t.equal(v.get('pgwarden_backend_state{backend="pg1",state="down"}'), 1, 'the next scrape sees the change');
  t.equal(v.get('pgwarden_primary_available'), 0);
  t.notOk(v.has('pgwarden_backend_state{backend="pg2",state="up"}'), 'a backend gone from the status is gone from the metrics');
});

t.test('counters and histograms follow the bus', async (t) => {
  const { bus, metrics } = setup(t);
  bus.emit('check', { backend: 'pg1', result: { ok: true, role: 'primary', durationMs: 3 } });
  bus.emit('check', { backend: 'pg1', result: { ok: true, role: 'primary', durationMs: 30, phases: { connect: 0.4, auth: 28, query: 1.6 } } });
  bus.emit('check', { backend: 'pg3', result: { ok: false, layer: 'L4CON', message: 'refused', durationMs: 1, phases: { connect: 1 } } });
  bus.emit('session.start', { listener: 'rw', backend: 'pg1' });
  bus.emit('session.start', { listener: 'rw', backend: 'pg1' });
  bus.emit('session.end', { listener: 'rw', backend: 'pg1', cause: 'client-terminate', durationMs: 1500, bytesFromClient: 100, bytesToClient: 4000 });
  bus.emit('session.end', { listener: 'rw', cause: 'rejected', durationMs: 10, bytesFromClient: 20, bytesToClient: 0 });
  bus.emit('session.rejected', { listener: 'ro', sqlstate: '57P03', code: 'PGW_QUEUE_TIMEOUT' });
  bus.emit('session.dequeued', { listener: 'ro', waitMs: 250, outcome: 'served' });
  bus.emit('session.dequeued', { listener: 'ro', waitMs: 20_000, outcome: 'timeout' });
  bus.emit('session.closed_by_proxy', { listener: 'rw', backend: 'pg1', reason: 'switchover', inTransaction: false });
  bus.emit('session.closed_by_proxy', { listener: 'rw', backend: 'pg1', reason: 'switchover', inTransaction: true });
  bus.emit('backend.state', { backend: 'pg3', from: 'up', to: 'down', detectionMs: 700 });
  bus.emit('backend.state', { backend: 'pg3', from: 'down', to: 'up' });
  bus.emit('primary.changed', { from: 'pg1', to: 'pg2' });
  bus.emit('primary.changed', { from: 'pg2' });
  bus.emit('backend.fenced', { backend: 'pg1', keep: 'pg2' });
  bus.emit('switchover.done', { from: 'pg1', to: 'pg2', durationMs: 4200, ok: true });
  bus.emit('switchover.done', { to: 'pg3', durationMs: 100, ok: false });
  bus.emit('hook.run', { event: 'post_switchover', command: 'backup.sh', outcome: 'ok', durationMs: 2000, exitCode: 0 });
  bus.emit('hook.run', { event: 'post_switchover', command: 'backup.sh', outcome: 'timeout', durationMs: 60_000 });
  bus.emit('host.threshold', { metric: 'cpu', crossed: true, value: 97, threshold: 90 });
  bus.emit('config.reload', { ok: true, changes: ['backends'] });
  bus.emit('config.reload', { ok: false, changes: [], error: 'bad' });
  bus.emit('timeline', { time: new Date().toISOString(), event: 'backend.down', level: 'warn', message: 'pg3 down', backend: 'pg3' });

  const v = await scrape(metrics);
  t.equal(v.get('pgwarden_check_duration_seconds_count{backend="pg1"}'), 2);
  t.equal(v.get('pgwarden_check_duration_seconds_sum{backend="pg1"}'), 0.033);
  t.equal(v.get('pgwarden_check_duration_seconds_bucket{backend="pg1",le="0.005"}'), 1);
  t.equal(v.get('pgwarden_check_phase_seconds_count{backend="pg1",phase="auth"}'), 1, 'one series per phase that ran');
  t.equal(v.get('pgwarden_check_phase_seconds_sum{backend="pg1",phase="auth"}'), 0.028);
  t.equal(v.get('pgwarden_check_phase_seconds_bucket{backend="pg1",le="0.0005",phase="connect"}'), 1, 'sub-millisecond buckets');
  t.equal(v.get('pgwarden_check_phase_seconds_count{backend="pg1",phase="query"}'), 1);
  t.notOk(v.has('pgwarden_check_phase_seconds_count{backend="pg1",phase="tls"}'), 'no TLS phase, no TLS series');
  t.equal(v.get('pgwarden_check_phase_seconds_count{backend="pg3",phase="connect"}'), 1, 'a failed check counts the phase it failed in');
  t.equal(v.get('pgwarden_checks_total{backend="pg1",layer="ok"}'), 2);
  t.equal(v.get('pgwarden_checks_total{backend="pg3",layer="L4CON"}'), 1);
  t.equal(v.get('pgwarden_sessions_total{backend="pg1",listener="rw"}'), 2);
  t.equal(v.get('pgwarden_client_received_bytes_total{listener="rw"}'), 120);
  t.equal(v.get('pgwarden_client_sent_bytes_total{listener="rw"}'), 4000);
  t.equal(v.get('pgwarden_session_duration_seconds_count{listener="rw"}'), 2);
  t.equal(v.get('pgwarden_sessions_rejected_total{listener="ro",sqlstate="57P03"}'), 1);
  t.equal(v.get('pgwarden_queue_wait_seconds_count{listener="ro",outcome="served"}'), 1);
  t.equal(v.get('pgwarden_queue_wait_seconds_sum{listener="ro",outcome="timeout"}'), 20);
  t.equal(v.get('pgwarden_sessions_closed_by_proxy_total{listener="rw",reason="switchover"}'), 2);
  t.equal(v.get('pgwarden_sessions_closed_in_transaction_total{listener="rw",reason="switchover"}'), 1);
  t.equal(v.get('pgwarden_failure_detection_seconds_count{backend="pg3"}'), 1, 'only the flip to down measures detection');
  t.equal(v.get('pgwarden_failure_detection_seconds_sum{backend="pg3"}'), 0.7);
  t.equal(v.get('pgwarden_backend_state_changes_total{backend="pg3",state="up"}'), 1);
  t.equal(v.get('pgwarden_primary_changes_total{backend="pg2"}'), 1);
  t.equal(v.get('pgwarden_primary_changes_total{backend="none"}'), 1);
  t.equal(v.get('pgwarden_fencing_events_total{backend="pg1"}'), 1);
  t.equal(v.get('pgwarden_switchover_duration_seconds_count{outcome="ok"}'), 1);
  t.equal(v.get('pgwarden_switchover_duration_seconds_sum{outcome="ok"}'), 4.2);
  t.equal(v.get('pgwarden_switchover_duration_seconds_count{outcome="failed"}'), 1);
  t.equal(v.get('pgwarden_hook_runs_total{event="post_switchover",outcome="ok"}'), 1);
  t.equal(v.get('pgwarden_hook_runs_total{event="post_switchover",outcome="timeout"}'), 1);
  t.equal(v.get('pgwarden_hook_duration_seconds_count{event="post_switchover"}'), 2);
  t.equal(v.get('pgwarden_host_threshold_alerts_total{resource="cpu"}'), 1);
  t.equal(v.get('pgwarden_host_threshold_active{resource="cpu"}'), 1);
  t.equal(v.get('pgwarden_config_reloads_total{outcome="ok"}'), 1);
  t.equal(v.get('pgwarden_config_reloads_total{outcome="failed"}'), 1);
  t.equal(v.get('pgwarden_events_total{event="backend.down"}'), 1);

  bus.emit('host.threshold', { metric: 'cpu', crossed: false, value: 10, threshold: 90 });
  t.equal((await scrape(metrics)).get('pgwarden_host_threshold_active{resource="cpu"}'), 0, 'the alert clears');
});

t.test('every metric is pgwarden_*, with low-cardinality labels only; process metrics included', async (t) => {
  const { metrics } = setup(t);
  const allowed = new Set(['backend', 'role', 'listener', 'state', 'layer', 'event', 'outcome', 'reason', 'sqlstate', 'cause', 'resource', 'mount', 'iface', 'member', 'phase', 'result', 'le']);
  const v = await scrape(metrics);
  t.ok(v.has('pgwarden_process_cpu_user_seconds_total'), 'default process metrics, prefixed');
  t.ok(v.has('pgwarden_nodejs_eventloop_lag_seconds'));
  const problems: string[] = [];
  for (const metric of metrics.registry.getMetricsAsArray()) {
    const name = metric.name;
    if (!name.startsWith('pgwarden_')) problems.push(`${name}: not prefixed pgwarden_`);
    if (name.startsWith('pgwarden_nodejs_') || name.startsWith('pgwarden_process_')) continue; // prom-client's own
    const labelNames = (metric as unknown as { labelNames?: string[] }).labelNames ?? [];
    for (const l of labelNames) if (!allowed.has(l)) problems.push(`${name}: label ${l}`);
    if (metric.help.length < 10) problems.push(`${name}: no help text`);
  }
  t.same(problems, [], 'every metric follows the naming and label rules');
});

t.test('host gauges appear when the status has host samples', async (t) => {
  const { controller, metrics } = setup(t);
  controller.snapshot = {
    ...baseSnapshot(),
    host: { at: new Date().toISOString(), cpuLoadPercent: 42, memoryUsedPercent: 61, disks: [{ mount: '/', usedPercent: 70 }], network: [{ iface: 'eth0', rxBytesPerSec: 10, txBytesPerSec: 20 }], alerts: [] },
  };
  const v = await scrape(metrics);
  t.equal(v.get('pgwarden_host_cpu_load_percent'), 42);
  t.equal(v.get('pgwarden_host_memory_used_percent'), 61);
  t.equal(v.get('pgwarden_host_disk_used_percent{mount="/"}'), 70);
  t.equal(v.get('pgwarden_host_network_transmit_bytes_per_second{iface="eth0"}'), 20);
});

const coordination = coordinationStatus;

t.test('coordination gauges: no series without coordination, the view of this member with it', async (t) => {
  const { bus, controller, metrics } = setup(t);
  let v = await scrape(metrics);
  t.same([...v.keys()].filter((k) => k.startsWith('pgwarden_coordination_')), [], 'an instance that does not coordinate exports no coordination series (not 0)');

  controller.snapshot = { ...baseSnapshot(), coordination: coordination() };
  v = await scrape(metrics);
  t.equal(v.get('pgwarden_coordination_leader'), 0);
  t.equal(v.get('pgwarden_coordination_epoch'), 4);
  t.equal(v.get('pgwarden_coordination_etcd_reachable'), 1);
  t.equal(v.get('pgwarden_coordination_members_alive'), 2);
  t.equal(v.get('pgwarden_coordination_member_lagging{member="a"}'), 1);
  t.equal(v.get('pgwarden_coordination_member_lagging{member="b"}'), 0);
  t.equal(v.get('pgwarden_coordination_member_lagging{member="c"}'), 0, 'a gone member is not lagging');
  t.notOk(v.has('pgwarden_coordination_handshake_seconds_count'), 'no handshake series before the first handshake');

  bus.emit('coordination.handshake', { epoch: 5, durationMs: 180 });
  bus.emit('coordination.handshake', { epoch: 7, durationMs: 2500 });
  controller.snapshot = { ...baseSnapshot(), coordination: coordination({ isLeader: true, epoch: undefined, etcd: { reachable: false, endpoints: [], lastError: 'deadline exceeded', onLoss: 'keep' } }) };
  v = await scrape(metrics);
  t.equal(v.get('pgwarden_coordination_leader'), 1);
  t.notOk(v.has('pgwarden_coordination_epoch'), 'no epoch series before the cluster state was read');
  t.equal(v.get('pgwarden_coordination_etcd_reachable'), 0);
  t.equal(v.get('pgwarden_coordination_handshake_seconds_count'), 2);
  t.equal(v.get('pgwarden_coordination_handshake_seconds_sum'), 2.68);
  t.equal(v.get('pgwarden_coordination_handshake_seconds_bucket{le="0.25"}'), 1);
});

t.test('close() detaches from the bus and is idempotent', async (t) => {
  const bus = new Bus();
  const metrics = new Metrics(bus, fakeController(baseSnapshot()));
  t.ok(bus.listenerCount('check') > 0);
  metrics.close();
  metrics.close();
  t.equal(bus.eventNames().length, 0, 'no listener left on the bus');
});
