// Split brain (GitHub issue "Failover", item 7): the old primary comes back after a failover and
// accepts writes on its old timeline. pgwarden keeps every session away from it — rw, any and
// ro alike — reports it (status, an error log line, the on_fence hook) and keeps writes on the
// newest timeline. Clearing the fence by hand does not help while the server is still a primary
// on an older timeline: the rule fences it again at once.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { startCluster } from '../helpers/cluster';
import { CHECK_USER, startProxy, waitFor, waitForBackend, whoAnswers } from '../helpers/proxy';
import { logLines, parseEnvFile, serverPortVia, timelineEvents } from '../helpers/failover';
import { freePort } from '../../src/harness/ports';

t.test('the old primary returns after a failover', async (t) => {
  const cluster = await startCluster(t, { replicas: 2, checkUser: CHECK_USER });
  const [pg1, pg2] = cluster.nodes;
  const dir = mkdtempSync(join(tmpdir(), 'pgwarden-fence-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'on_fence.env');
  const anyPort = await freePort();
  const p = await startProxy(t, cluster, {
    listeners: (rw, ro) => `  - { name: rw, bind: "127.0.0.1:${rw}", route: primary }
  - { name: any, bind: "127.0.0.1:${anyPort}", route: any }
  - { name: ro, bind: "127.0.0.1:${ro}", route: replica }`,
    extra: `hooks:
  on_fence:
    - command: [sh, -c, 'env | grep ^PGWARDEN_ > "$OUT.tmp" && mv "$OUT.tmp" "$OUT"']
      env: { OUT: ${JSON.stringify(out)} }`,
  });
  for (const n of cluster.nodes) await waitForBackend(p, n.name, 'up');

  await cluster.kill9(pg1);
  await waitForBackend(p, 'pg1', 'down');
  await cluster.promote(pg2);
  await waitFor('pg2 is the primary', () => p.app.topology.primary()?.name === 'pg2');
  t.equal((await cluster.query(pg2, "select pg_walfile_name(pg_current_wal_lsn()) as f"))[0].f.slice(0, 8), '00000002', 'pg2 writes on timeline 2');

  await cluster.start(pg1);
  t.equal((await cluster.query(pg1, 'select pg_is_in_recovery() as r'))[0].r, false, 'pg1 is back as a primary (on timeline 1)');
  await waitFor('pg1 is up and fenced', () => p.app.topology.get('pg1')?.state === 'up' && p.app.topology.get('pg1')?.fenced === true);

  t.test('no session reaches the fenced server; the fence is reported', async (t) => {
    const ports = { rw: new Set<number>(), any: new Set<number>(), ro: new Set<number>() };
    for (let i = 0; i < 10; i++) {
      ports.rw.add(await serverPortVia(p.rwPort));
      ports.any.add(await serverPortVia(anyPort));
      ports.ro.add(await serverPortVia(p.roPort));
    }
    t.same([...ports.rw], [pg2.port], 'rw: every session on pg2');
    t.notOk(ports.any.has(pg1.port), `any: never pg1 (saw ports ${[...ports.any].join(', ')})`);
    t.notOk(ports.ro.has(pg1.port), `ro: never pg1 (saw ports ${[...ports.ro].join(', ')})`);

    const status = p.app.status();
    t.match(status.backends.find((b) => b.name === 'pg1'), { state: 'up', role: 'primary', fenced: true, isPrimary: false });
    t.equal(status.primary, 'pg2', 'status: pg2 is the primary');
    t.match(logLines(p, 'backend.fenced'), [{ level: 'error', backend: 'pg1', keep: 'pg2', msg: /split brain: pg1 \(timeline 1\) and pg2 \(timeline 2\) both accept writes/ }]);

    await waitFor('the on_fence hook wrote its environment', () => existsSync(out));
    t.match(parseEnvFile(readFileSync(out, 'utf8')), {
      PGWARDEN_EVENT: 'on_fence',
      PGWARDEN_BACKEND_NAME: 'pg1',
      PGWARDEN_BACKEND_PORT: String(pg1.port),
      PGWARDEN_NEW_PRIMARY_NAME: 'pg2',
      PGWARDEN_NEW_PRIMARY_PORT: String(pg2.port),
    });
  });

  const onFenceRuns = () => timelineEvents(p, 'hook.run').filter((e) => e.message.startsWith('on_fence hook')).length;

  t.test('clearing the fence by hand: fenced again at once, writes stay on pg2', async (t) => {
    const before = p.app.timeline.recent().length;
    p.app.setAdminState('pg1', 'ready');
    const since = p.app.timeline.recent().slice(before).map((e) => e.event);
    t.same(since.filter((e) => e === 'backend.unfenced' || e === 'backend.fenced'), ['backend.unfenced', 'backend.fenced'], 'unfenced by the operator, then fenced by the rule');
    t.match(timelineEvents(p, 'backend.unfenced'), [{ backend: 'pg1', message: /cleared by an operator/ }]);
    t.equal(p.app.topology.get('pg1')?.fenced, true, 'pg1 is fenced again: still a primary on an older timeline');
    t.equal(p.app.topology.primary()?.name, 'pg2', 'pg2 keeps the writes');
    for (let i = 0; i < 5; i++) t.same(await whoAnswers(p.rwPort), { port: pg2.port, inRecovery: false }, 'rw → pg2');
    t.notOk(await anySessionOn(anyPort, pg1.port, 6), 'any: never pg1');
    await waitFor('the on_fence hook ran again', () => onFenceRuns() === 2);
    t.equal(logLines(p, 'backend.fenced').length, 2, 'two backend.fenced lines: the first fence and the re-fence');
  });
});

async function anySessionOn(port: number, serverPort: number, tries: number): Promise<boolean> {
  for (let i = 0; i < tries; i++) if ((await serverPortVia(port)) === serverPort) return true;
  return false;
}
