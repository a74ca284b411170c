// The admin HTTP API and the CLI verbs against a fake AdminController (no PostgreSQL): routing,
// auth, bodies, health-source codes. test/integration/admin.test.ts runs it against a real App.
import { Writable } from 'node:stream';
import net from 'node:net';
import t, { type Test } from 'tap';
import { Bus } from '../../src/events';
import { Metrics } from '../../src/metrics/metrics';
import { AdminServer } from '../../src/admin/server';
import { formatStatus, runAdminVerb, type AdminTarget, type AdminVerb } from '../../src/admin/client';
import type { AdminController } from '../../src/admin/controller';
import type { HistorySnapshot } from '../../src/admin/history-snapshot';
import type { AdminState, BackendStatus, CoordinationStatus, StatusSnapshot } from '../../src/routing/status-snapshot';
import { UnknownBackendError } from '../../src/errors';
import { createLogger } from '../../src/logger';
import { coordinationStatus } from '../helpers/coordination-status';

const TOKEN = 'admin-token-7d1e';

function backend(name: string, over: Partial<BackendStatus> = {}): BackendStatus {
  return { name, host: '127.0.0.1', port: 5432, state: 'up', adminState: 'ready', fenced: false, transitional: false, role: 'replica', isPrimary: false, weight: 100, effectiveWeight: 100, backup: false, sessions: 0, startupsInFlight: 0, ...over };
}

class FakeApp implements AdminController {
  snapshot: StatusSnapshot = {
    version: '0.1.0',
    startedAt: new Date().toISOString(),
    primary: 'pg1',
    listeners: [{ name: 'rw', bind: '127.0.0.1:6432', route: 'primary', balance: 'roundrobin', fallback: 'none', sessions: 0, queued: 0, hasCandidate: true }],
    backends: [backend('pg1', { role: 'primary', isPrimary: true }), backend('pg2', { lagBytes: 2048, lagSeconds: 3 })],
    events: [],
  };
  status = () => this.snapshot;
  past: HistorySnapshot = {
    intervalMs: 5_000,
    windowMs: 900_000,
    now: 1_700_000_010_000,
    points: [
      { t: 1_700_000_005_000, sessions: { rw: 2 }, queued: { rw: 0 }, bytesPerSecond: { in: 120, out: 4_800 }, lag: { pg2: { bytes: 2048, seconds: 3 } } },
      { t: 1_700_000_010_000, sessions: { rw: 0 }, queued: { rw: 3 }, bytesPerSecond: { in: 0, out: 0 }, lag: {} },
    ],
    markers: [{ t: 1_700_000_007_000, event: 'primary.lost', message: 'no primary: pg1 is down', backend: 'pg1' }],
  };
  history = () => this.past;
  setAdminState(name: string, state: AdminState): void {
    const b = this.snapshot.backends.find((x) => x.name === name);
    if (!b) throw new UnknownBackendError(name);
    b.adminState = state;
  }
  switchover = async (to: string) => (to === 'pg2' ? { ok: true, from: 'pg1', to, durationMs: 12, closedIdle: 1, closedInTransaction: 0 } : { ok: false, to, error: `${to} is not a replica` });
  reload = async () => ({ ok: true, changes: ['backends.pg2.weight: 100 → 50'] });
  ready = () => this.snapshot.listeners.every((l) => l.hasCandidate);
}

async function start(t: Test, token: string | null = TOKEN) {
  const app = new FakeApp();
  const metrics = new Metrics(new Bus(), app);
  const logs: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const log = createLogger('info', { write: (s: string) => (raw.push(s), logs.push(JSON.parse(s))) });
  const server = new AdminServer({ host: '127.0.0.1', port: 0, token: token ?? undefined, controller: app, metrics, log, maxReplicaLag: { bytes: 1024 * 1024 } });
  await server.listen();
  t.teardown(async () => {
    await server.close();
    metrics.close();
  });
  const base = `http://127.0.0.1:${server.address().port}`;
  const req = async (method: string, path: string, opts: { token?: string; body?: string } = {}) => {
    const headers: Record<string, string> = {};
    if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
    const res = await fetch(base + path, { method, headers, body: opts.body });
    const text = await res.text();
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, text, json, type: res.headers.get('content-type') ?? '' };
  };
  return { app, server, req, logs, raw: () => raw.join(''), port: server.address().port };
}

t.test('reads are open', async (t) => {
  const { req, app } = await start(t);
  t.same((await req('GET', '/healthz')).json, { status: 'ok' });
  t.equal((await req('GET', '/status')).json.primary, 'pg1');
  const m = await req('GET', '/metrics');
  t.match(m.type, /text\/plain/);
  t.match(m.text, /pgwarden_backend_state\{backend="pg1",state="up"\} 1/);
  const home = await req('GET', '/');
  t.match(home.type, /text\/html/);
  t.match(home.text, /pgwarden/);
  t.equal((await req('GET', '/readyz')).status, 200);
  app.snapshot.listeners[0] = { ...app.snapshot.listeners[0], hasCandidate: false, reason: 'no primary available' };
  const r = await req('GET', '/readyz');
  t.equal(r.status, 503);
  t.same(r.json.listenersWithoutCandidate, [{ listener: 'rw', reason: 'no primary available' }]);
});

t.test('GET /history answers the samples and markers as JSON, without a token', async (t) => {
  const { req, app } = await start(t);
  const r = await req('GET', '/history');
  t.equal(r.status, 200);
  t.match(r.type, /^application\/json/);
  t.same(r.json, app.past, 'the controller\'s history as it is');
  t.equal((await req('HEAD', '/history')).status, 200);
  t.equal((await req('POST', '/history', { token: TOKEN })).status, 405, 'read-only');
});

t.test('/primary and /replica answer like Patroni', async (t) => {
  const { req, app } = await start(t);
  const p = await req('GET', '/primary');
  t.equal(p.status, 200);
  t.match(p.json, { name: 'pg1', host: '127.0.0.1', port: 5432 });
  t.equal((await req('HEAD', '/primary')).status, 200, 'HEAD works');
  t.equal((await req('OPTIONS', '/primary')).status, 200, "OPTIONS works (HAProxy's default httpchk)");
  t.equal((await req('GET', '/replica')).status, 200, 'within the default max lag (1MB)');
  t.equal((await req('GET', '/replica?lag=1024')).status, 503, 'bare number: bytes');
  t.equal((await req('GET', '/replica?lag=4kB')).status, 200);
  t.equal((await req('GET', '/replica?lag=1s')).status, 503, 'pg2 is 3 s behind');
  t.equal((await req('GET', '/replica?lag=10s')).status, 200);
  const bad = await req('GET', '/replica?lag=lots');
  t.equal(bad.status, 400);
  t.equal(bad.json.code, 'PGW_ADMIN_BAD_REQUEST');
  app.setAdminState('pg2', 'drain');
  const drained = await req('GET', '/replica');
  t.equal(drained.status, 503, 'a drained replica is not a health source');
  t.equal(drained.json.backends.pg2, 'drain');
  app.snapshot.primary = undefined;
  t.equal((await req('GET', '/primary')).status, 503);
});

t.test('state changes need the token', async (t) => {
  const { req, logs, raw } = await start(t);
  t.equal((await req('POST', '/backends/pg2/drain')).status, 401, 'missing');
  t.equal((await req('POST', '/backends/pg2/drain', { token: 'nope' })).status, 403, 'wrong');
  const ok = await req('POST', '/backends/pg2/drain', { token: TOKEN });
  t.equal(ok.status, 200);
  t.same(ok.json, { ok: true, backend: 'pg2', adminState: 'drain' });
  t.equal((await req('GET', '/status')).json.backends[1].adminState, 'drain');
  t.equal((await req('POST', '/backends/pg2/ready', { token: TOKEN })).json.adminState, 'ready');
  const unknown = await req('POST', '/backends/pg9/maint', { token: TOKEN });
  t.equal(unknown.status, 404);
  t.equal(unknown.json.code, 'PGW_UNKNOWN_BACKEND');
  t.equal((await req('POST', '/switchover', { token: TOKEN, body: '{"to":"pg2"}' })).status, 200);
  t.equal((await req('POST', '/switchover', { token: TOKEN, body: '{"to":"pg1"}' })).status, 409);
  t.equal((await req('POST', '/switchover', { token: TOKEN, body: '{nope' })).status, 400);
  t.equal((await req('POST', '/switchover', { token: TOKEN, body: '{}' })).status, 400);
  t.equal((await req('POST', '/reload', { token: TOKEN })).status, 200);
  const big = await req('POST', '/switchover', { token: TOKEN, body: JSON.stringify({ to: 'x'.repeat(20_000) }) });
  t.equal(big.status, 413);
  const lines = logs.filter((l) => l.event === 'admin.request');
  t.ok(lines.length >= 10, 'every state change is logged');
  t.match(lines.find((l) => l.status === 401), { method: 'POST', path: '/backends/pg2/drain' });
  t.notMatch(raw(), TOKEN, 'the token never reaches the log');
});

t.test('without a configured token state changes are disabled', async (t) => {
  const { req } = await start(t, null);
  const r = await req('POST', '/reload', { token: 'anything' });
  t.equal(r.status, 403);
  t.match(r.json.error, /admin\.token/);
  t.equal((await req('GET', '/status')).status, 200, 'reads still work');
});

t.test('unknown routes 404, wrong methods 405', async (t) => {
  const { req } = await start(t);
  const nf = await req('GET', '/nope');
  t.equal(nf.status, 404);
  t.equal(nf.json.code, 'PGW_ADMIN_NOT_FOUND');
  t.equal((await req('POST', '/status', { token: TOKEN })).status, 405);
  t.equal((await req('GET', '/reload')).status, 405);
  t.equal((await req('DELETE', '/backends/pg1/drain')).status, 405);
});

t.test('close() drops kept-alive connections and is idempotent', async (t) => {
  const { server, port } = await start(t);
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => socket.on('data', () => resolve()).write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'));
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  await Promise.all([server.close(), server.close()]);
  await closed;
  t.pass('the idle keep-alive socket was closed');
});

function sink(): Writable & { text: () => string } {
  const chunks: string[] = [];
  const w = new Writable({ write: (c, _e, cb) => (chunks.push(String(c)), cb()) }) as Writable & { text: () => string };
  w.text = () => chunks.join('');
  return w;
}

t.test('runAdminVerb', async (t) => {
  const { port } = await start(t);
  const admin = { host: '127.0.0.1', port, token: TOKEN };
  const run = async (verb: AdminVerb, args: { backend?: string; to?: string } = {}, target: AdminTarget = admin) => {
    const out = sink();
    const err = sink();
    const code = await runAdminVerb(verb, args, target, out, err);
    return { code, out: out.text(), err: err.text() };
  };
  const s = await run('status');
  t.equal(s.code, 0);
  t.match(s.out, /primary: pg1/);
  t.match(s.out, /BACKEND\s+ADDRESS\s+STATE\s+ADMIN\s+ROLE\s+LAG\s+SESSIONS\s+LAST CHECK/);
  t.match(s.out, /pg2\s+127\.0\.0\.1:5432\s+up\s+ready\s+replica\s+2kB \/ 3\.0s/);
  t.match(s.out, /LISTENER/);
  t.match(await run('drain', { backend: 'pg2' }), { code: 0, out: 'pg2 is now drain\n' });
  t.match(await run('ready', { backend: 'pg2' }), { code: 0, out: 'pg2 is now ready\n' });
  t.match(await run('maint', { backend: 'pg9' }), { code: 1, err: /404.*no backend named pg9/ });
  t.match(await run('switchover', { to: 'pg2' }), { code: 0, out: /pg1 → pg2/ });
  t.match(await run('switchover', { to: 'pg1' }), { code: 1, err: /409.*not a replica/ });
  t.match(await run('reload'), { code: 0, out: /weight/ });
  t.match(await run('drain'), { code: 2, err: /usage: pgwarden drain NAME/ });
  t.match(await run('switchover'), { code: 2, err: /--to NAME/ });
  t.match(await run('drain', { backend: 'pg2' }, { ...admin, token: 'wrong' }), { code: 1, err: /403/ });
  const gone = await start(t);
  await gone.server.close();
  const unreachable = await run('status', {}, { host: '127.0.0.1', port: gone.port });
  t.equal(unreachable.code, 1);
  t.match(unreachable.err, `cannot reach the pgwarden admin API at http://127.0.0.1:${gone.port}`);
});

const coordination = coordinationStatus;

t.test('GET /status passes the coordination object through; pgwarden status prints the cluster block', async (t) => {
  const { app, req, port } = await start(t);
  t.notOk('coordination' in (await req('GET', '/status')).json, 'no coordination object without coordination');
  app.snapshot.coordination = coordination();
  t.same((await req('GET', '/status')).json.coordination, coordination(), 'unchanged in the JSON');

  const out = sink();
  t.equal(await runAdminVerb('status', {}, { host: '127.0.0.1', port }, out, sink()), 0);
  const lines = out.text().split('\n');
  const at = lines.findIndex((l) => l.startsWith('cluster:'));
  t.same(lines.slice(at, at + 5), [
    'cluster: member a of [a, b, c] (quorum 2), leader b, epoch 4 (stable), primary pg2 timeline 2, etcd reachable',
    '  a  alive  epoch 3  lagging',
    '  b  alive  epoch 4  leader',
    '  c  gone',
    '',
  ], 'a summary line and one line per member, between the primary and the backends');
  t.ok(at > 0 && lines.indexOf('primary: pg1') < at && lines.findIndex((l) => l.startsWith('BACKEND')) > at);
});

t.test('pgwarden status: the cluster block during a failover, without a leader, and with etcd out of reach', async (t) => {
  const base = new FakeApp().snapshot;
  const block = (c: CoordinationStatus) => {
    const lines = formatStatus({ ...base, coordination: c }).split('\n');
    const at = lines.findIndex((l) => l.startsWith('cluster:'));
    return lines.slice(at, lines.indexOf('', at));
  };
  t.notMatch(formatStatus(base), /cluster:/, 'no block without coordination');

  const failover = block(coordination({
    name: 'b', isLeader: true, epoch: 5, phase: 'failover', primary: undefined, timeline: undefined, candidate: 'pg3', fenced: ['pg2'], lastHandshakeMs: 182.4,
    members: [
      { name: 'a', alive: true, ackEpoch: 5, lagging: false, votesDown: true, leader: false },
      { name: 'b', alive: true, ackEpoch: 5, lagging: false, votesDown: true, leader: true },
      { name: 'c', alive: false, lagging: false, votesDown: false, leader: false },
    ],
  }));
  t.same(failover, [
    'cluster: member b of [a, b, c] (quorum 2), leader b (this one), epoch 5 (failover to pg3), no agreed primary, etcd reachable, last handshake 182 ms',
    '  a  alive  epoch 5  votes the primary down',
    '  b  alive  epoch 5  leader  votes the primary down',
    '  c  gone',
    '  fenced: pg2',
  ]);

  const noLeader = block(coordination({ leader: undefined, epoch: undefined, phase: undefined, primary: undefined, timeline: undefined }));
  t.match(noLeader[0], ', NO LEADER,', 'says there is no leader');
  t.match(noLeader[0], 'no cluster state read yet');

  const lost = block(coordination({
    members: coordination().members.map((m) => ({ ...m, alive: false, ackEpoch: undefined, lagging: false, leader: false })),
    leader: undefined,
    etcd: { reachable: false, endpoints: ['http://10.0.0.5:2379', 'http://10.0.0.6:2379'], lastError: 'deadline exceeded after 1000 ms', onLoss: 'readonly' },
  }));
  t.same(lost, [
    'cluster: member a of [a, b, c] (quorum 2), NO LEADER, epoch 4 (stable), primary pg2 timeline 2, etcd UNREACHABLE (on loss: readonly)',
    '  a  unknown',
    '  b  unknown',
    '  c  unknown',
    '  etcd: deadline exceeded after 1000 ms (endpoints http://10.0.0.5:2379, http://10.0.0.6:2379)',
  ], 'members unknown (not gone) while etcd is out of reach, and etcd\'s last error');
});

t.test('pgwarden status: startups in flight beside the sessions, only while there are some', async (t) => {
  const base = new FakeApp().snapshot;
  const row = (b: BackendStatus) => formatStatus({ ...base, backends: [b] }).split('\n').find((l) => l.startsWith(b.name))!;
  t.match(row(backend('pg1', { sessions: 12, startupsInFlight: 3 })), /\b12 \+3 starting\b/);
  t.notMatch(row(backend('pg1', { sessions: 12 })), /starting/);
});

t.test('an accept error of the listening server (out of descriptors) is logged, not thrown, once per burst', async (t) => {
  const { server, req, logs } = await start(t);
  const http = (server as unknown as { server: import('node:http').Server }).server;
  for (let i = 0; i < 3; i++) http.emit('error', Object.assign(new Error('accept EMFILE'), { code: 'EMFILE', syscall: 'accept' }));
  const lines = logs.filter((l) => l.event === 'admin.accept_error');
  t.equal(lines.length, 1, 'one line for three');
  t.match(lines[0], { code: 'EMFILE', err: 'accept EMFILE' });
  t.same((await req('GET', '/healthz')).json, { status: 'ok' }, 'still answering');
});

t.test('GET /debug/resources: token required; after a forced collection, memory, resources by type, fds and sessions', async (t) => {
  const { app, req } = await start(t);
  t.equal((await req('GET', '/debug/resources')).status, 401, 'it forces a collection, so it wants the token');
  app.snapshot.listeners[0]!.sessions = 3;
  app.snapshot.listeners[0]!.queued = 1;
  // A timer of ours is an active resource of this process: it must be counted by type.
  const timer = setInterval(() => {}, 60_000);
  t.teardown(() => clearInterval(timer));
  const res = await req('GET', '/debug/resources', { token: TOKEN });
  t.equal(res.status, 200);
  const r = res.json;
  t.equal(r.gcForced, true, "V8's gc() is reachable through --expose-gc set at run time");
  t.ok(r.rssBytes > 0 && r.heapUsedBytes > 0 && r.heapUsedBytes <= r.heapTotalBytes, 'memory figures');
  t.ok(r.resources.Timeout >= 1, 'timers counted');
  t.ok(r.resources.TCPSocketWrap >= 1, 'sockets counted (the request itself, the server)');
  if (process.platform === 'linux') t.ok(r.openFds > 0, 'open descriptors from /proc/self/fd');
  t.same({ sessions: r.sessions, queued: r.queued, backends: r.backends }, { sessions: 3, queued: 1, backends: 2 });
});
