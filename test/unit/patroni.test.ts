// health.patroni without Patroni: GET /patroni parsed from canned Patroni 3.0 documents and
// served by a tiny local HTTP server; the drain decision; the DCS failover key; and the watch
// (patroni-watch.ts) on a FakeClock with a fake REST and a fake DCS over a real Topology: what it
// drains, when the drain ends, and that a failing REST or DCS never drains anything.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { FakeClock } from '../../src/clock';
import type { BackendConfig, Config } from '../../src/config/types';
import { dcsView, parseFailoverKey, type PatroniDcsView } from '../../src/coordination/patroni-dcs';
import { PatroniWatch, SCHEDULED_LEAD_MS, type DcsSource } from '../../src/control/patroni-watch';
import { bestReplica } from '../../src/control/promotion-candidate';
import { Timeline } from '../../src/control/timeline';
import { Bus } from '../../src/events';
import { parsePatroni, patroniDrainReason, patroniGet, unreachable, type PatroniMember, type PatroniTarget } from '../../src/health/patroni-rest';
import { createLogger } from '../../src/logger';
import { Topology, type CheckerSnapshot } from '../../src/routing/topology';

// What Patroni 3.0.2 answers (api.py get_postgresql_status and _write_status_response).
const LEADER = JSON.stringify({
  state: 'running', postmaster_start_time: '2026-12-01 10:00:00.0+00:00', role: 'master', server_version: 150005,
  xlog: { location: 50331744 }, timeline: 2, replication: [{ usename: 'replicator', application_name: 'p2', state: 'streaming', sync_state: 'sync' }],
  dcs_last_seen: 1764583200, database_system_identifier: '7312345678901234567', patroni: { version: '3.0.2', scope: 'main' },
});
const REPLICA = JSON.stringify({
  state: 'running', role: 'replica', timeline: 2, sync_standby: true, pending_restart: true, tags: { nofailover: 'true' },
  scheduled_restart: { schedule: '2026-12-01T12:00:00+00:00', restart_pending: true }, pause: true, patroni: { version: '3.0.2', scope: 'main' },
});
// While the leader demotes: PostgreSQL stopped, no SQL answer, the role Patroni set.
const DEMOTED = JSON.stringify({ state: 'stopped', role: 'demoted', dcs_last_seen: 1764583200, patroni: { version: '3.0.2', scope: 'main' } });

t.test('GET /patroni: the fields pgwarden reads', async (t) => {
  t.same(parsePatroni(LEADER), { reachable: true, scope: 'main', version: '3.0.2', role: 'master', state: 'running', timeline: 2, pendingRestart: false, noFailover: false, pause: false, syncStandby: false });
  t.same(parsePatroni(REPLICA), {
    reachable: true, scope: 'main', version: '3.0.2', role: 'replica', state: 'running', timeline: 2, pendingRestart: true, noFailover: true,
    scheduledRestartAt: Date.parse('2026-12-01T12:00:00Z'), pause: true, syncStandby: true,
  });
  t.match(parsePatroni(JSON.stringify({ patroni: { name: 'pg-a' }, tags: { nofailover: true } })), { name: 'pg-a', noFailover: true }, 'patroni.name (Patroni 3.1+) and a YAML boolean tag');
  t.match(parsePatroni('<html>'), { reachable: false, error: 'the answer is not JSON' });
  t.match(parsePatroni('[1]'), { reachable: false });
});

t.test('the drain decision: Patroni is demoting, stopping, restarting or starting the member, or its scheduled restart is due', async (t) => {
  const now = Date.parse('2026-12-01T11:00:00Z');
  const member = (over: Partial<PatroniMember>): PatroniMember => ({ ...parsePatroni(LEADER), ...over });
  t.equal(patroniDrainReason(parsePatroni(LEADER), now), undefined, 'a running leader');
  t.equal(patroniDrainReason(parsePatroni(REPLICA), now), undefined, 'pending_restart, nofailover, pause and a restart scheduled later drain nothing');
  t.equal(patroniDrainReason(parsePatroni(REPLICA), Date.parse('2026-12-01T12:00:00Z')), 'its scheduled restart is due');
  t.equal(patroniDrainReason(parsePatroni(DEMOTED), now), 'Patroni is demoting it');
  for (const state of ['stopping', 'stopped', 'restarting', 'starting']) t.equal(patroniDrainReason(member({ state }), now), `Patroni reports it ${state}`, state);
  for (const state of ['running', 'streaming', 'crashed', 'unknown']) t.equal(patroniDrainReason(member({ state }), now), undefined, `${state}: the SQL checks decide`);
  t.equal(patroniDrainReason(unreachable('connect ECONNREFUSED'), now), undefined, 'an unreachable REST API drains nothing');
});

/** A local server answering GET /patroni with `handler`; closed at teardown. */
async function restServer(t: Test, handler: (res: import('node:http').ServerResponse) => void): Promise<PatroniTarget> {
  const server: Server = createServer((req, res) => (req.url === '/patroni' ? handler(res) : res.writeHead(404).end()));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { host: '127.0.0.1', port: (server.address() as AddressInfo).port, scheme: 'http', timeoutMs: 300 };
}

t.test('patroniGet: 200 and 503 are answers, anything else is unreachable, and it never throws', async (t) => {
  const ok = await restServer(t, (res) => res.writeHead(200, { 'content-type': 'application/json' }).end(LEADER));
  t.match(await patroniGet(ok), { reachable: true, role: 'master', timeline: 2 });
  const stopped = await restServer(t, (res) => res.writeHead(503).end(DEMOTED));
  t.match(await patroniGet(stopped), { reachable: true, role: 'demoted', state: 'stopped' }, 'Patroni answers 503 with the document while PostgreSQL is down');
  const teapot = await restServer(t, (res) => res.writeHead(418).end('{}'));
  t.match(await patroniGet(teapot), { reachable: false, error: /answered HTTP 418/ });
  const html = await restServer(t, (res) => res.writeHead(200).end('<html>'));
  t.match(await patroniGet(html), { reachable: false, error: /not JSON/ });
  const silent = await restServer(t, () => undefined);
  t.match(await patroniGet(silent), { reachable: false, error: /no answer within 300 ms/ });
  const closed = await restServer(t, () => undefined);
  t.match(await patroniGet({ ...closed, port: 1 }), { reachable: false, error: /ECONNREFUSED/ });
});

t.test('the DCS failover key and members', async (t) => {
  t.same(parseFailoverKey('{"leader":"p1","member":"p2"}'), { leader: 'p1', candidate: 'p2' });
  t.same(parseFailoverKey('{"leader":"p1","scheduled_at":"2026-12-01T12:00:00+00:00"}'), { leader: 'p1', scheduledAt: Date.parse('2026-12-01T12:00:00Z') });
  t.same(parseFailoverKey('p1:p2'), { leader: 'p1', candidate: 'p2' }, "Patroni's old `leader:member` text");
  t.same(parseFailoverKey('{}'), {});
  const key = (value: string) => ({ value, modRevision: '1', lease: '0' });
  const view = dcsView({
    revision: '9',
    keys: new Map([
      ['leader', key('p1')],
      ['failover', key('{"leader":"p1","member":"p2"}')],
      ['members/p1', key('{"conn_url":"postgres://10.0.0.1:5432/postgres","api_url":"http://10.0.0.1:8008/patroni","state":"running","role":"master"}')],
      ['members/p2', key('{"conn_url":"postgres://10.0.0.2/postgres"}')],
      ['config', key('{"ttl":30}')],
    ]),
  });
  t.same(view, { leader: 'p1', failover: { leader: 'p1', candidate: 'p2' }, members: new Map([['p1', { host: '10.0.0.1', port: 5432 }], ['p2', { host: '10.0.0.2', port: 5432 }]]) });
  t.notOk('failover' in dcsView({ revision: '10', keys: new Map([['leader', key('p2')], ['failover', key('{}')]]) }), 'Patroni empties the key to {} when done: no request');
});

// ---- the watch ------------------------------------------------------------------------------

const backend = (name: string, host: string): BackendConfig => ({ name, host, port: 5432, weight: 100, backup: false });
const primaryUp: CheckerSnapshot = { state: 'up', transitional: false, lastResult: { ok: true, role: 'primary', currentLsn: 100n, durationMs: 1 } };
const replicaUp: CheckerSnapshot = { state: 'up', transitional: false, lastResult: { ok: true, role: 'replica', replayLsn: 100n, receiveLsn: 100n, replayLagSeconds: 0, durationMs: 1 } };
const down: CheckerSnapshot = { state: 'down', transitional: false, lastResult: { ok: false, layer: 'L4CON', message: 'connect ECONNREFUSED', durationMs: 1 } };
const START = Date.parse('2026-12-01T11:00:00Z');
const INTERVAL = 500;

class FakeDcs implements DcsSource {
  view: PatroniDcsView = { leader: 'pg-a', members: new Map([['pg-a', { host: '10.0.0.1', port: 5432 }], ['pg-b', { host: '10.0.0.2', port: 5432 }], ['pg-c', { host: '10.0.0.3', port: 5432 }]]) };
  failing: string | undefined;
  private nudge: (() => void) | undefined;
  read(): Promise<PatroniDcsView> {
    return this.failing === undefined ? Promise.resolve(this.view) : Promise.reject(new Error(this.failing));
  }
  watch(onChange: () => void): () => void {
    this.nudge = onChange;
    return () => (this.nudge = undefined);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
  /** A change under the cluster's keys, as the etcd watch reports it. */
  set(change: Partial<PatroniDcsView> & { failover?: PatroniDcsView['failover'] }): void {
    this.view = { ...this.view, ...change };
    if ('failover' in change && change.failover === undefined) {
      const { failover: _gone, ...rest } = this.view;
      this.view = rest;
    }
    this.nudge?.();
  }
}

function setup(t: Test) {
  const clock = new FakeClock(START);
  // Backend names differ from Patroni's member names: the watch maps them by conn_url.
  const topology = new Topology([backend('a', '10.0.0.1'), backend('b', '10.0.0.2'), backend('c', '10.0.0.3')], { maxReplicaLag: {} });
  topology.update('a', primaryUp);
  topology.update('b', replicaUp);
  topology.update('c', replicaUp);
  const timeline = new Timeline(new Bus(), createLogger('silent'));
  const config = {
    health: { interval: 1000, patroni: { port: 8008, scheme: 'http', interval: INTERVAL, timeout: 200, dcs: { namespace: '/service', scope: 'main', etcd: { endpoints: [], timeout: 100 } } } },
    failover: { drainTimeout: 10_000 },
  } as unknown as Config;
  const answers = new Map<string, PatroniMember>([
    ['10.0.0.1', parsePatroni(LEADER)],
    ['10.0.0.2', parsePatroni(JSON.stringify({ state: 'running', role: 'replica', timeline: 2 }))],
    ['10.0.0.3', parsePatroni(JSON.stringify({ state: 'running', role: 'replica', timeline: 2 }))],
  ]);
  const asked: PatroniTarget[] = [];
  const get = async (target: PatroniTarget) => {
    asked.push(target);
    return answers.get(target.host) ?? unreachable('no such host');
  };
  const dcs = new FakeDcs();
  const watch = new PatroniWatch({ topology, timeline, log: createLogger('silent'), config: () => config, sessions: () => [], dcs, get, clock });
  t.teardown(() => watch.stop());
  const events = (name: string) => timeline.recent().filter((e) => e.event === name).map((e) => e.backend);
  return { clock, topology, timeline, answers, asked, dcs, watch, events };
}

t.test('watch: REST polls every interval; a member Patroni stops is drained until it runs again; an unreachable one is not', async (t) => {
  const { clock, topology, answers, asked, watch, events } = setup(t);
  watch.start();
  await clock.advanceAsync(0);
  t.same(asked.map((a) => `${a.host}:${a.port}`), ['10.0.0.1:8008', '10.0.0.2:8008', '10.0.0.3:8008']);
  t.match(topology.get('a')?.patroni, { role: 'master', name: 'pg-a' }, 'the member name from the DCS conn_url');
  t.equal(topology.get('a')?.patroniDrain, undefined);

  answers.set('10.0.0.2', parsePatroni(JSON.stringify({ state: 'restarting', role: 'replica' })));
  await clock.advanceAsync(INTERVAL);
  t.equal(asked.length, 6, 'one more GET per backend after one interval');
  t.equal(topology.get('b')?.patroniDrain, 'Patroni reports it restarting');
  t.notOk(topology.routable(topology.get('b')!), 'no new sessions');
  t.equal(topology.get('b')?.adminState, 'ready', "the operator's admin state is untouched");
  t.same(events('patroni.drain'), ['b']);

  answers.set('10.0.0.2', parsePatroni(JSON.stringify({ state: 'running', role: 'replica' })));
  await clock.advanceAsync(INTERVAL);
  t.equal(topology.get('b')?.patroniDrain, undefined);
  t.ok(topology.routable(topology.get('b')!));
  t.same(events('patroni.ready'), ['b']);

  answers.set('10.0.0.3', unreachable('connect ECONNREFUSED'));
  await clock.advanceAsync(INTERVAL);
  t.match(topology.get('c')?.patroni, { reachable: false, error: 'connect ECONNREFUSED' });
  t.ok(topology.routable(topology.get('c')!), 'a REST API that does not answer never drains a server');
  t.equal(topology.get('c')?.state, 'up', 'nor marks it down');
});

t.test('watch: the failover key drains the leader at once; the drain ends when the key is emptied and writes moved on', async (t) => {
  const { clock, topology, dcs, watch, events } = setup(t);
  watch.start();
  await clock.advanceAsync(0);
  t.match(watch.status(), { dcs: { key: '/service/main/failover', reachable: true, leader: 'pg-a' } });

  dcs.set({ failover: { leader: 'pg-a', candidate: 'pg-b' } });
  await clock.advanceAsync(0);
  t.equal(topology.get('a')?.patroniDrain, 'Patroni switchover from pg-a to pg-b requested');
  t.equal(topology.primary()?.name, 'a', 'still the primary: new write sessions wait in the queue');
  t.notOk(topology.routable(topology.get('a')!));
  t.same(events('patroni.switchover'), ['a']);
  t.match(watch.status(), { dcs: { failover: { leader: 'pg-a', candidate: 'pg-b' }, draining: 'a' } });

  // Patroni: the old leader stops, the candidate takes the leader key and empties the request.
  dcs.set({ leader: 'pg-b', failover: undefined });
  await clock.advanceAsync(0);
  t.ok(topology.get('a')?.patroniDrain, 'held while pgwarden still routes writes to a');
  topology.update('a', down);
  t.equal(topology.get('a')?.patroniDrain, undefined, 'over once pgwarden no longer routes writes to it');
  t.same(events('patroni.switchover_end'), ['a']);
  topology.update('b', primaryUp);
  t.equal(topology.primary()?.name, 'b');
});

t.test('watch: a cancelled switchover ends the drain at once; a DCS silent for drain_timeout drops it', async (t) => {
  const { clock, topology, dcs, watch } = setup(t);
  watch.start();
  await clock.advanceAsync(0);
  dcs.set({ failover: { candidate: 'pg-c' } });
  await clock.advanceAsync(0);
  t.ok(topology.get('a')?.patroniDrain, 'a failover naming only a candidate drains the member holding the leader key');
  dcs.set({ failover: undefined });
  await clock.advanceAsync(0);
  t.equal(topology.get('a')?.patroniDrain, undefined, 'the leader key still names pg-a: cancelled or refused');

  dcs.set({ failover: { leader: 'pg-a', candidate: 'pg-b' } });
  await clock.advanceAsync(0);
  t.ok(topology.get('a')?.patroniDrain);
  dcs.failing = 'etcd did not answer within 1000 ms';
  await clock.advanceAsync(INTERVAL);
  t.match(watch.status(), { dcs: { reachable: false, error: 'etcd did not answer within 1000 ms' } });
  t.ok(topology.get('a')?.patroniDrain, 'one failed read does not end a switchover already seen');
  dcs.failing = undefined;
  await clock.advanceAsync(INTERVAL);
  t.match(watch.status(), { dcs: { reachable: true } });
  dcs.failing = 'etcd did not answer within 1000 ms';
  // The first failed read comes within one interval; drain_timeout (10 s) counts from it.
  await clock.advanceAsync(10_000 - 1);
  t.ok(topology.get('a')?.patroniDrain, 'still drained before drain_timeout of silence');
  await clock.advanceAsync(2 * INTERVAL);
  t.equal(topology.get('a')?.patroniDrain, undefined, 'etcd silent for drain_timeout: back to REST and SQL alone');
  dcs.failing = undefined;
  await clock.advanceAsync(INTERVAL);
  t.ok(topology.get('a')?.patroniDrain, 'etcd back, the request still there: drained again');
});

t.test('watch: a scheduled switchover drains shortly before its time', async (t) => {
  const { clock, topology, dcs, watch } = setup(t);
  watch.start();
  await clock.advanceAsync(0);
  dcs.set({ failover: { leader: 'pg-a', candidate: 'pg-b', scheduledAt: START + 60_000 } });
  await clock.advanceAsync(0);
  t.equal(topology.get('a')?.patroniDrain, undefined, 'not yet');
  await clock.advanceAsync(60_000 - SCHEDULED_LEAD_MS - 1);
  t.equal(topology.get('a')?.patroniDrain, undefined, 'not yet');
  await clock.advanceAsync(1);
  t.ok(topology.get('a')?.patroniDrain, `${SCHEDULED_LEAD_MS} ms before scheduled_at`);
});

t.test('a member Patroni tags nofailover is never a promotion candidate', async (t) => {
  const topology = new Topology([backend('a', '10.0.0.1'), backend('b', '10.0.0.2')], { maxReplicaLag: {} });
  topology.update('a', down);
  topology.update('b', replicaUp);
  t.equal(bestReplica(topology, 'a', 1_000_000)?.name, 'b');
  topology.setPatroni('b', { ...parsePatroni(REPLICA), at: START });
  t.equal(bestReplica(topology, 'a', 1_000_000), undefined);
});
