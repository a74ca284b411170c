// The admin API and metrics on a real App in front of a real primary and two replicas: every
// endpoint with and without the token, health-source codes, metrics that follow a stopped
// replica, drain/ready visible in /status, and the CLI verbs.
import { Writable } from 'node:stream';
import t from 'tap';
import { startCluster } from '../helpers/cluster';
import { CHECK_USER, connect, startProxy, waitFor, waitForBackend } from '../helpers/proxy';
import { AdminServer } from '../../src/admin/server';
import { runAdminVerb, type AdminVerb } from '../../src/admin/client';
import { Metrics } from '../../src/metrics/metrics';
import { createLogger } from '../../src/logger';
import { freePort } from '../../src/harness/ports';

const TOKEN = 'admin-secret-31c8';

/** Value of one exposition series, e.g. `pgwarden_backend_state{backend="pg3",state="down"}`; labels as written by prom-client. */
function series(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([\w:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

function sink(): Writable & { text: () => string } {
  const chunks: string[] = [];
  const w = new Writable({ write: (c, _e, cb) => (chunks.push(String(c)), cb()) }) as Writable & { text: () => string };
  w.text = () => chunks.join('');
  return w;
}

t.test('admin API and metrics on a running pgwarden', async (t) => {
  const cluster = await startCluster(t, { replicas: 2, checkUser: CHECK_USER });
  const [pg1, , pg3] = cluster.nodes;
  const p = await startProxy(t, cluster);
  for (const n of cluster.nodes) await waitForBackend(p, n.name, 'up');

  const adminLog: string[] = [];
  const metrics = new Metrics(p.app.bus, p.app);
  const server = new AdminServer({
    host: '127.0.0.1',
    port: await freePort(),
    token: TOKEN,
    controller: p.app,
    metrics,
    log: createLogger('info', { write: (s: string) => void adminLog.push(s) }),
    maxReplicaLag: p.app.config.health.maxReplicaLag,
  });
  await server.listen();
  t.teardown(async () => {
    await server.close();
    metrics.close();
  });
  const port = server.address().port;
  const base = `http://127.0.0.1:${port}`;
  const req = async (method: string, path: string, opts: { token?: string; body?: string } = {}) => {
    const headers: Record<string, string> = opts.token ? { authorization: `Bearer ${opts.token}` } : {};
    const res = await fetch(base + path, { method, headers, body: opts.body });
    const text = await res.text();
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      /* text */
    }
    return { status: res.status, text, json, type: res.headers.get('content-type') ?? '' };
  };
  const admin = { host: '127.0.0.1', port, token: TOKEN };
  const verb = async (v: AdminVerb, args: { backend?: string; to?: string } = {}) => {
    const out = sink();
    const err = sink();
    const code = await runAdminVerb(v, args, admin, out, err);
    return { code, out: out.text(), err: err.text() };
  };

  t.test('open reads', async (t) => {
    t.same((await req('GET', '/healthz')).json, { status: 'ok' });
    await waitFor('ready', async () => (await req('GET', '/readyz')).status === 200);
    const s = (await req('GET', '/status')).json;
    t.equal(s.primary, 'pg1');
    t.same(s.backends.map((b: { name: string }) => b.name), ['pg1', 'pg2', 'pg3']);
    t.same(s.listeners.map((l: { name: string }) => l.name), ['rw', 'ro']);
    const home = await req('GET', '/');
    t.equal(home.status, 200);
    t.match(home.type, /text\/html/);
    const m = await req('GET', '/metrics');
    t.equal(m.status, 200);
    t.equal(series(m.text, 'pgwarden_backend_is_primary', { backend: 'pg1' }), 1);
    t.ok(series(m.text, 'pgwarden_process_resident_memory_bytes')! > 0, 'process metrics');
  });

  t.test('/primary and /replica', async (t) => {
    const pr = await req('GET', '/primary');
    t.equal(pr.status, 200);
    t.match(pr.json, { name: 'pg1', port: pg1.port });
    t.equal((await req('GET', '/replica')).status, 200);
    t.equal((await req('GET', '/replica?lag=16MB')).status, 200);
    t.equal((await req('GET', '/replica?lag=10s')).status, 200);
    t.equal((await req('GET', '/replica?lag=16 parsecs')).status, 400);
  });

  t.test('auth, unknown routes and methods', async (t) => {
    t.equal((await req('POST', '/backends/pg2/drain')).status, 401);
    t.equal((await req('POST', '/backends/pg2/drain', { token: 'wrong' })).status, 403);
    t.equal((await req('POST', '/reload')).status, 401);
    t.equal((await req('POST', '/switchover', { body: '{"to":"pg2"}' })).status, 401);
    t.equal((await req('POST', '/backends/nope/drain', { token: TOKEN })).status, 404);
    t.equal((await req('GET', '/nope')).status, 404);
    t.equal((await req('GET', '/backends/pg2/drain')).status, 405);
    t.equal((await req('DELETE', '/status')).status, 405);
    t.equal((await req('POST', '/switchover', { token: TOKEN, body: 'not json' })).status, 400);
    t.equal((await req('POST', '/switchover', { token: TOKEN, body: '{"to":"pg9"}' })).status, 404);
    const toPrimary = await req('POST', '/switchover', { token: TOKEN, body: '{"to":"pg1"}' });
    t.equal(toPrimary.status, 409, 'a switchover to the current primary is refused');
    t.match(toPrimary.json.error, /already the primary/);
    t.equal((await req('GET', '/primary')).json.name, 'pg1', 'pg1 is still the primary');
    const reload = await req('POST', '/reload', { token: TOKEN });
    t.equal(reload.status, 400, 'reload without a config file: 400 with the reason');
    t.match(reload.json.error, /no config file/);
    t.notMatch(adminLog.join(''), TOKEN, 'the token never reaches the log');
    t.ok(adminLog.filter((l) => l.includes('"admin.request"')).length >= 8, 'state change requests are logged');
  });

  t.test('drain / ready round-trip, in /status, /replica and /metrics', async (t) => {
    t.equal((await req('POST', '/backends/pg2/drain', { token: TOKEN })).status, 200);
    t.equal((await req('POST', '/backends/pg3/maint', { token: TOKEN })).status, 200);
    const s = (await req('GET', '/status')).json;
    t.same(s.backends.map((b: { adminState: string }) => b.adminState), ['ready', 'drain', 'maint']);
    t.equal((await req('GET', '/replica')).status, 503, 'no replica takes traffic');
    const m = (await req('GET', '/metrics')).text;
    t.equal(series(m, 'pgwarden_backend_admin_state', { backend: 'pg2', state: 'drain' }), 1);
    t.equal(series(m, 'pgwarden_backend_admin_state', { backend: 'pg3', state: 'maint' }), 1);
    t.equal((await req('POST', '/backends/pg2/ready', { token: TOKEN })).status, 200);
    t.equal((await req('POST', '/backends/pg3/ready', { token: TOKEN })).status, 200);
    t.same((await req('GET', '/status')).json.backends.map((b: { adminState: string }) => b.adminState), ['ready', 'ready', 'ready']);
    t.equal((await req('GET', '/replica')).status, 200);
  });

  t.test('sessions and checks are counted', async (t) => {
    const c = await connect(p.rwPort);
    await c.query('select 1');
    await waitFor('one active session in the metrics', async () => series((await req('GET', '/metrics')).text, 'pgwarden_listener_active_sessions', { listener: 'rw' }) === 1);
    await c.end();
    await waitFor('session counted and ended', async () => {
      const m = (await req('GET', '/metrics')).text;
      return (series(m, 'pgwarden_sessions_total', { listener: 'rw', backend: 'pg1' }) ?? 0) >= 1 && (series(m, 'pgwarden_client_received_bytes_total', { listener: 'rw' }) ?? 0) > 0;
    });
    // The Metrics object was made after the backends came up, so it counts only the checks that
    // finished since; on a fast run the first of those may still be in flight here.
    await waitFor('a successful pg1 check counted', async () => (series((await req('GET', '/metrics')).text, 'pgwarden_checks_total', { backend: 'pg1', layer: 'ok' }) ?? 0) > 0);
    const m = (await req('GET', '/metrics')).text;
    t.ok(series(m, 'pgwarden_checks_total', { backend: 'pg1', layer: 'ok' })! > 0, 'successful checks counted');
    t.ok(series(m, 'pgwarden_check_duration_seconds_count', { backend: 'pg1' })! > 0, 'check durations observed');
  });

  t.test('a stopped replica shows in the metrics', async (t) => {
    await cluster.stop(pg3, 'immediate');
    await waitForBackend(p, 'pg3', 'down');
    await waitFor('pg3 down in /metrics', async () => series((await req('GET', '/metrics')).text, 'pgwarden_backend_state', { backend: 'pg3', state: 'down' }) === 1);
    const m = (await req('GET', '/metrics')).text;
    t.equal(series(m, 'pgwarden_backend_state', { backend: 'pg3', state: 'up' }), 0);
    t.ok(series(m, 'pgwarden_checks_total', { backend: 'pg3', layer: 'L4CON' })! > 0, 'failed checks by layer');
    // At least one: a check that timed out twice on a loaded machine may have flapped pg3 before.
    t.ok(series(m, 'pgwarden_backend_state_changes_total', { backend: 'pg3', state: 'down' })! >= 1, 'the change to down is counted');
    t.equal((await req('GET', '/replica')).status, 200, 'pg2 still serves reads');
    const s = await verb('status');
    t.equal(s.code, 0);
    t.match(s.out, /pg3\s+127\.0\.0\.1:\d+\s+down/);
    await cluster.start(pg3);
    await waitForBackend(p, 'pg3', 'up');
  });

  t.test('CLI verbs', async (t) => {
    const s = await verb('status');
    t.equal(s.code, 0, s.err);
    t.match(s.out, /primary: pg1/);
    t.match(s.out, /pg2\s+127\.0\.0\.1:\d+\s+up\s+ready\s+replica/);
    t.match(s.out, /ro\s+127\.0\.0\.1:\d+\s+replica/);
    t.same(await verb('drain', { backend: 'pg2' }), { code: 0, out: 'pg2 is now drain\n', err: '' });
    t.equal((await req('GET', '/status')).json.backends[1].adminState, 'drain');
    t.same(await verb('ready', { backend: 'pg2' }), { code: 0, out: 'pg2 is now ready\n', err: '' });
    t.match(await verb('maint', { backend: 'nope' }), { code: 1, err: /404.*no backend named nope/ });
    t.match(await verb('switchover'), { code: 2 });
    const bad = sink();
    t.equal(await runAdminVerb('drain', { backend: 'pg2' }, { ...admin, token: undefined }, sink(), bad), 1);
    t.match(bad.text(), /401/);
  });
});
