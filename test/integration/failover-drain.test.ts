// What happens to the sessions of a server that fails (GitHub issue "Failover", items 2 and 4):
// with `on_down: shutdown-sessions` pgwarden itself ends them with FATAL 57P01 saying why — even
// when the dead server's own process is hung and would never end them; with `on_down: keep` it
// leaves them alone; a replica that falls behind max_replica_lag keeps its sessions but gets no
// new ones; on_backend_down / on_backend_up hooks run with the backend in their environment.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { startCluster } from '../helpers/cluster';
import { CHECK_USER, connect, startProxy, waitFor, waitForBackend } from '../helpers/proxy';
import { healthConfig, nextError, parseEnvFile, pauseReplay, resumeReplay, serverPortVia, sessionOn, writeWal } from '../helpers/failover';

// "The server failed and pgwarden is switching" (App.onBackendState), not the server's own
// "terminating connection due to …" text: this is what proves pgwarden closed the session.
const PGWARDEN_DRAIN = /^terminating connection: server (pg\d) failed \(.*\); pgwarden is switching, reconnect to continue$/;

t.test('sessions of a failed server', async (t) => {
  const cluster = await startCluster(t, { replicas: 2, checkUser: CHECK_USER });
  const [pg1, pg2, pg3] = cluster.nodes;
  const hookDir = mkdtempSync(join(tmpdir(), 'pgwarden-hooks-'));
  t.teardown(() => rmSync(hookDir, { recursive: true, force: true }));
  // Each run leaves "<event>-<backend>" holding its PGWARDEN_* variables (written, then renamed,
  // so a file that exists is complete).
  const marker = ['sh', '-c', 'env | grep ^PGWARDEN_ > "$OUT/.tmp.$$" && mv "$OUT/.tmp.$$" "$OUT/$PGWARDEN_EVENT-$PGWARDEN_BACKEND_NAME"'];
  const hook = `    - command: ${JSON.stringify(marker)}\n      env: { OUT: ${JSON.stringify(hookDir)} }`;
  const p = await startProxy(t, cluster, {
    health: healthConfig('  max_replica_lag: 1MB'),
    extra: `hooks:\n  on_backend_down:\n${hook}\n  on_backend_up:\n${hook}`,
  });
  // A second pgwarden with on_down: keep, in front of the primary only, checking with its own
  // user so that its checks can be made to fail without touching the first one's.
  await cluster.query(pg1, "create role pgwarden_keep login password 'keep-secret' in role pg_monitor");
  const keep = await startProxy(t, cluster, {
    health: healthConfig('', 'pgwarden_keep'),
    failover: '  queue_timeout: 20s\n  on_down: keep',
    backends: () => `  - { name: pg1, host: 127.0.0.1, port: ${pg1.port} }`,
  });
  for (const n of cluster.nodes) await waitForBackend(p, n.name, 'up');
  await waitForBackend(keep, 'pg1', 'up');

  t.test('a replica beyond max_replica_lag keeps its sessions but gets no new ones', async (t) => {
    const { client: onPg2 } = await sessionOn(p.roPort, pg2);
    await pauseReplay(cluster, pg2);
    try {
      await writeWal(cluster, pg1, 3);
      await waitFor('pgwarden sees pg2 more than 1MB behind', () => (p.app.topology.get('pg2')?.lagBytes ?? 0) > 1024 * 1024);
      const r = await onPg2.query('select inet_server_port() as port, pg_is_in_recovery() as rec');
      t.same({ port: Number(r.rows[0].port), rec: r.rows[0].rec }, { port: pg2.port, rec: true }, 'the existing session on the lagging replica still answers');
      const ports = new Set<number>();
      for (let i = 0; i < 6; i++) ports.add(await serverPortVia(p.roPort));
      t.same([...ports], [pg3.port], 'every new ro session went to pg3');
      t.equal(p.app.topology.get('pg2')?.state, 'up', 'pg2 is still up (lag is not a failure)');
    } finally {
      await resumeReplay(cluster, pg2);
    }
    await waitFor('pg2 caught up', () => (p.app.topology.get('pg2')?.lagBytes ?? Infinity) <= 1024 * 1024);
    await waitFor('a new ro session reaches pg2 again', async () => (await serverPortVia(p.roPort)) === pg2.port);
    t.equal((await onPg2.query('select 1 as one')).rows[0].one, 1, 'the old session lived through it all');
    await onPg2.end();
  });

  t.test('on_down: keep — a backend that fails its checks keeps its sessions', async (t) => {
    const c = await connect(keep.rwPort);
    t.equal(Number((await c.query('select inet_server_port() as port')).rows[0].port), pg1.port);
    const closedByProxy: unknown[] = [];
    keep.app.bus.on('session.closed_by_proxy', (e) => closedByProxy.push(e));
    // The check user may no longer log in; dropping its kept connection makes the next check
    // log in afresh and fail at L7AUTH — the server itself stays perfectly usable.
    await cluster.query(pg1, 'alter role pgwarden_keep nologin');
    try {
      await cluster.query(pg1, "select pg_terminate_backend(pid) from pg_stat_activity where usename = 'pgwarden_keep'");
      // (A check that merely timed out on a loaded machine is not what this waits for.)
      await waitFor('pg1 down at L7AUTH', () => keep.app.topology.get('pg1')?.state === 'down' && keep.app.topology.get('pg1')?.lastFailure?.layer === 'L7AUTH');
      t.pass('down because the check cannot log in (L7AUTH)');
      const r = await c.query('select inet_server_port() as port');
      t.equal(Number(r.rows[0].port), pg1.port, 'the session still answers while its backend is down');
      t.same(closedByProxy, [], 'pgwarden closed no session');
      t.equal(keep.app.sessions('pg1').length, 1, 'the session is still counted on pg1');
    } finally {
      await cluster.query(pg1, 'alter role pgwarden_keep login');
    }
    await waitForBackend(keep, 'pg1', 'up');
    t.equal((await c.query('select 1 as one')).rows[0].one, 1, 'and after the backend is back up');
    await c.end();
  });

  t.test('a replica stopped with -m immediate: its ro session gets pgwarden’s FATAL 57P01; hooks run', async (t) => {
    const { client, pid } = await sessionOn(p.roPort, pg3);
    const error = nextError(client);
    // A loaded machine can make a check time out now and then (a flap runs the hooks too):
    // only runs from here on count.
    for (const f of readdirSync(hookDir)) rmSync(join(hookDir, f), { force: true });
    // Freeze the session's server process: it can neither end the session itself nor answer,
    // like a process that survived its postmaster. Only pgwarden can close the session now.
    process.kill(pid, 'SIGSTOP');
    const stopped = cluster.stop(pg3, 'immediate');
    try {
      await waitForBackend(p, 'pg3', 'down');
      const e = await withDeadline(error, 10_000, 'the FATAL on the idle ro session');
      t.match(e, { code: '57P01', severity: 'FATAL', message: PGWARDEN_DRAIN });
      t.equal(PGWARDEN_DRAIN.exec(e.message)?.[1], 'pg3', 'it names the failed server');
    } finally {
      process.kill(pid, 'SIGKILL');
      await stopped;
    }
    const down = join(hookDir, 'on_backend_down-pg3');
    await waitFor('the on_backend_down hook ran for pg3', () => existsSync(down));
    t.match(parseEnvFile(readFileSync(down, 'utf8')), {
      PGWARDEN_EVENT: 'on_backend_down',
      PGWARDEN_BACKEND_NAME: 'pg3',
      PGWARDEN_BACKEND_HOST: '127.0.0.1',
      PGWARDEN_BACKEND_PORT: String(pg3.port),
    });
    t.notOk(existsSync(join(hookDir, 'on_backend_up-pg3')), 'no on_backend_up for pg3 yet');

    await cluster.start(pg3);
    await waitForBackend(p, 'pg3', 'up');
    const up = join(hookDir, 'on_backend_up-pg3');
    await waitFor('the on_backend_up hook ran for pg3', () => existsSync(up));
    t.match(parseEnvFile(readFileSync(up, 'utf8')), { PGWARDEN_EVENT: 'on_backend_up', PGWARDEN_BACKEND_NAME: 'pg3', PGWARDEN_BACKEND_PORT: String(pg3.port) });
  });

  t.test('the primary SIGKILLed: its idle rw session gets pgwarden’s FATAL 57P01', async (t) => {
    const { client, pid } = await sessionOn(p.rwPort, pg1);
    const error = nextError(client);
    rmSync(join(hookDir, 'on_backend_down-pg1'), { force: true });
    process.kill(pid, 'SIGSTOP');
    const killed = cluster.kill9(pg1);
    try {
      await waitForBackend(p, 'pg1', 'down');
      const e = await withDeadline(error, 10_000, 'the FATAL on the idle rw session');
      t.match(e, { code: '57P01', severity: 'FATAL', message: PGWARDEN_DRAIN });
      t.equal(PGWARDEN_DRAIN.exec(e.message)?.[1], 'pg1', 'it names the failed server');
      // The client may read the FATAL before pgwarden has finished tearing the session down.
      await waitFor('no session left on pg1', () => p.app.sessions('pg1').length === 0, 5_000);
      t.pass('no session left on pg1');
    } finally {
      process.kill(pid, 'SIGKILL');
      await killed;
    }
    await waitFor('the on_backend_down hook ran for pg1', () => existsSync(join(hookDir, 'on_backend_down-pg1')));
  });
});

function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}
