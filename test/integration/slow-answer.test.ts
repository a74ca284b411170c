// A server that accepted a session's connection and has not answered its startup yet is either
// busy (the postmaster is behind on forking backends: a connection storm, the reconnects after a
// failover) or hung. pgwarden must not treat busy as gone — closing a connection the server is
// about to fork a backend for and connecting again only adds work for a server that is behind —
// and must not strand a session on a hung server either: the checker is asked to look, a hung
// server is marked down, and the session, which has sent the client nothing yet, goes back to
// routing (here: the queue, as there is no other primary) instead of getting an error.
//
// Both are played by a real PostgreSQL with SIGSTOP: on the postmaster alone (it stops accepting
// and forking; the kernel still completes TCP handshakes into its backlog, and the health
// check's kept connection, served by an existing backend, keeps answering) — busy; on the
// postmaster and all its children — hung.
import t from 'tap';
import { startCluster } from '../helpers/cluster';
import { CHECK_USER, connect, healthConfig, startProxy, waitFor, waitForBackend } from '../helpers/proxy';
import { childPids, readPostmasterPid } from '../../src/harness/run';

function signal(pids: number[], sig: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, sig);
    } catch {
      /* gone */
    }
  }
}

t.test('a server that answers a new session late, and one that hangs', async (t) => {
  const cluster = await startCluster(t, { replicas: 0, checkUser: CHECK_USER });
  const pg1 = cluster.primary;
  const p = await startProxy(t, cluster, {
    health: healthConfig(),
    extra: 'proxy:\n  connect_timeout: 300ms\n  startup_timeout: 60s',
  });
  await waitForBackend(p, pg1.name, 'up');
  const postmaster = readPostmasterPid(pg1.dataDir)!;

  t.test('busy: the session waits for the answer, the checker is asked to look, nothing is retried', async (t) => {
    const since = p.logs.length;
    signal([postmaster], 'SIGSTOP');
    t.teardown(() => signal([postmaster], 'SIGCONT'));
    const client = connect(p.rwPort, { connectionTimeoutMillis: 30_000 });
    client.catch(() => undefined);
    // Past connect_timeout: the session's server is being checked, and it stays up (its kept
    // check connection is served by a backend that is not stopped).
    await waitFor('the checker asked to look at the silent server', () => p.logs.slice(since).some((l) => l.event === 'backend.slow_answer'));
    t.equal(p.app.topology.get(pg1.name)?.state, 'up', 'the busy server stays up');
    signal([postmaster], 'SIGCONT');
    const c = await client;
    t.teardown(() => c.end());
    const r = await c.query('select 1 as one');
    t.equal(r.rows[0].one, 1, 'the session got its late answer and works');
    t.notOk(
      p.logs.slice(since).some((l) => l.event === 'backend.connect_failed'),
      'no connection was given up and made again',
    );
  });

  t.test('hung: marked down, the unanswered session waits in the queue and gets through once the server is back', async (t) => {
    const since = p.logs.length;
    const all = [postmaster, ...childPids(postmaster)];
    signal(all, 'SIGSTOP');
    t.teardown(() => signal(all, 'SIGCONT'));
    const client = connect(p.rwPort, { connectionTimeoutMillis: 45_000 });
    client.catch(() => undefined);
    await waitForBackend(p, pg1.name, 'down', 20_000);
    await waitFor('the session sent back to routing', () =>
      p.logs.slice(since).some((l) => l.event === 'session.redispatched' && l.reason === 'down'),
    );
    signal(all, 'SIGCONT');
    const c = await client;
    t.teardown(() => c.end());
    const r = await c.query('select pg_is_in_recovery() as r');
    t.equal(r.rows[0].r, false, 'the held session reached the primary once it was up again');
  });
});
