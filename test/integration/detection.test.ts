// Fast detection of a backend that dies between checks. Every case runs with `interval: 60s`, so
// a steady-state check is a minute away and cannot explain a DOWN within the deadline: only the
// fast path can (the kept check connection breaking → onConnectionLost → poke → checks every
// fast_interval until `fall`). Durations are measured and printed, never asserted.
import t, { type Test } from 'tap';
import type { Client } from 'pg';
import { startCluster } from '../helpers/cluster';
import { netnsUnavailableReason, startNamespacedPostgres } from '../helpers/netns';
import { CHECK_USER, connect, startProxy, waitFor, waitForBackend, type RunningProxy } from '../helpers/proxy';
import type { PgCluster, PgNode } from '../../src/harness/cluster';
import { childPids, readPostmasterPid } from '../../src/harness/run';
import type { PokeEvent, TransitionEvent } from '../../src/health/checker';

const DEADLINE_MS = 10_000;

/**
 * A minute between steady checks of an UP server; fast checks 100 ms apart; two failures of 1 s
 * at most make DOWN. down_interval is short only so a slow first check on a loaded machine does
 * not strand the server DOWN before the case starts; it plays no part once the server is UP.
 */
function slowChecks(user: string, passwordEnv?: string, interval = '60s'): string {
  return `  check: postgres
  user: ${user}
${passwordEnv === undefined ? '' : `  password_env: ${passwordEnv}\n`}  interval: ${interval}
  fast_interval: 100ms
  down_interval: 500ms
  timeout: 1s
  rise: 1
  fall: 2`;
}

/** pgwarden with just `node` behind it (rw and ro listeners both route to it). */
async function proxyFor(t: Test, cluster: PgCluster, node: PgNode, interval?: string): Promise<RunningProxy> {
  const p = await startProxy(t, cluster, {
    backends: () => `  - { name: ${node.name}, host: 127.0.0.1, port: ${node.port} }`,
    listeners: (rw, ro) => `  - { name: rw, bind: "127.0.0.1:${rw}", route: primary }
  - { name: ro, bind: "127.0.0.1:${ro}", route: replica }`,
    health: slowChecks(CHECK_USER.name, 'TEST_CHECK_PASSWORD', interval),
    // A proxy in front of a replica alone has no primary: it would role poll the replica every
    // 50 ms (failover.watch_interval), and a failed poll is a third fast path. Off, so each case
    // shows the path it is about.
    failover: '  queue_timeout: 20s\n  queue_size: 100\n  watch_interval: 0',
  });
  await waitForBackend(p, node.name, 'up').catch((e: Error) => {
    throw new Error(`${e.message}: ${describeFailure(p, node.name)}`);
  });
  return p;
}

interface Watch {
  /** Each poke with the ms since `since()` at which it came. */
  readonly pokes: (PokeEvent & { readonly atMs: number })[];
  /** Resolves with ms from `since()` to the transition to DOWN. */
  readonly down: Promise<number>;
  since(): void;
}

/** Records the checker's pokes and when it turned DOWN (its own event: no polling granularity). */
function watch(p: RunningProxy, name: string): Watch {
  const checker = p.app.checkers.get(name);
  if (checker === undefined) throw new Error(`no checker for ${name}`);
  const pokes: (PokeEvent & { atMs: number })[] = [];
  let start = performance.now();
  checker.on('poke', (e) => pokes.push({ ...e, atMs: Math.round(performance.now() - start) }));
  const down = new Promise<number>((resolve) => {
    const onTransition = (e: TransitionEvent) => {
      if (e.to !== 'down') return;
      checker.off('transition', onTransition);
      resolve(Math.round(performance.now() - start));
    };
    checker.on('transition', onTransition);
  });
  return {
    pokes,
    down,
    since: () => {
      start = performance.now();
    },
  };
}

function describePokes(w: Watch): string {
  return w.pokes.map((e) => `${e.action} at ${e.atMs} ms (${e.reason})`).join('; ') || 'none';
}

function describeFailure(p: RunningProxy, name: string): string {
  const f = p.app.topology.get(name)?.lastFailure;
  return f === undefined ? 'no failure recorded' : `${f.layer}: ${f.message}`;
}

t.test('backends that die between checks are noticed on the fast path', async (t) => {
  const cluster = await startCluster(t, { replicas: 2, checkUser: CHECK_USER });
  const [pg1, pg2, pg3] = cluster.nodes as [PgNode, PgNode, PgNode];

  t.test('c. a hung server (SIGSTOP on the postmaster and its children) fails its checks with L7TOUT', async (t) => {
    // TCP cannot see this one: the kernel still ACKs data and keepalive probes for a stopped
    // process, so the kept connection stays "healthy" and nothing pokes the checker. Only an
    // application round trip notices, so this case uses a short steady interval and checks that
    // a hung server is classified and marked DOWN (rather than hanging a check).
    const p = await proxyFor(t, cluster, pg3, '1s');
    const w = watch(p, pg3.name);
    const { stop, resume } = freezer(pg3.dataDir);
    t.teardown(resume);
    try {
      w.since();
      stop();
      await waitForBackend(p, pg3.name, 'down', DEADLINE_MS);
      t.comment(`hung ${pg3.name}: DOWN after ${await w.down} ms (interval 1s, timeout 1s, fall 2); last failure ${describeFailure(p, pg3.name)}`);
      t.equal(p.app.topology.get(pg3.name)?.lastFailure?.layer, 'L7TOUT', 'the check timed out after the TCP connection was accepted');
    } finally {
      resume();
    }
  });

  t.test(
    'c2. a hung server is noticed without a steady check when a session stalls in its startup',
    async (t) => {
      const p = await proxyFor(t, cluster, pg3);
      const w = watch(p, pg3.name);
      const { stop, resume } = freezer(pg3.dataDir);
      t.teardown(resume);
      let client: Promise<Client> | undefined;
      try {
        w.since();
        stop();
        // A client arrives: pgwarden connects (the kernel accepts for the stopped postmaster) and
        // forwards the startup, which is never answered.
        client = connect(p.roPort, { connectionTimeoutMillis: DEADLINE_MS + 2_000 });
        client.catch(() => undefined);
        await waitForBackend(p, pg3.name, 'down', DEADLINE_MS);
        t.comment(`hung ${pg3.name} with interval 60s: DOWN after ${await w.down} ms; pokes: ${describePokes(w)}`);
        t.pass('DOWN without a steady-state check');
      } finally {
        resume();
        await client?.then((c) => c.end()).catch(() => undefined);
      }
    },
  );

  t.test('b. pg_ctl stop -m immediate on a replica', async (t) => {
    const p = await proxyFor(t, cluster, pg2);
    const w = watch(p, pg2.name);
    w.since();
    await cluster.stop(pg2, 'immediate');
    await waitForBackend(p, pg2.name, 'down', DEADLINE_MS);
    t.comment(`${pg2.name} stopped -m immediate: DOWN after ${await w.down} ms; last failure ${describeFailure(p, pg2.name)}; pokes: ${describePokes(w)}`);
    t.ok(w.pokes.some((e) => e.reason.startsWith('check connection lost')), 'the kept check connection breaking poked the checker');
  });

  t.test('a. SIGKILL of the primary postmaster', async (t) => {
    const p = await proxyFor(t, cluster, pg1);
    const w = watch(p, pg1.name);
    w.since();
    // Its backends, the one behind the kept check connection among them, notice the postmaster's
    // death and exit (FATAL "terminating connection due to unexpected postmaster exit").
    await Promise.all([cluster.kill9(pg1), waitForBackend(p, pg1.name, 'down', DEADLINE_MS)]);
    t.comment(`${pg1.name} postmaster SIGKILL: DOWN after ${await w.down} ms; last failure ${describeFailure(p, pg1.name)}; pokes: ${describePokes(w)}`);
    t.ok(w.pokes.some((e) => e.reason.startsWith('check connection lost')), 'the kept check connection breaking poked the checker');
  });
});

t.test('d. a network cut without FIN or RST (silent drop)', async (t) => {
  const unavailable = netnsUnavailableReason();
  if (unavailable !== undefined) {
    t.comment(`skipped: ${unavailable}`);
    t.pass(`network namespace test skipped: ${unavailable}`);
    return;
  }
  const pg = await startNamespacedPostgres(t);
  t.comment(`PostgreSQL in namespace ${pg.namespace} at ${pg.host}:${pg.port}; cut by ${pg.cutMethod}`);
  // startProxy wants a cluster only for its default backends; this backend is given explicitly.
  const noCluster = { nodes: [] } as unknown as PgCluster;
  const p = await startProxy(t, noCluster, {
    backends: () => `  - { name: ns1, host: ${pg.host}, port: ${pg.port} }`,
    health: slowChecks('postgres'),
  });
  await waitForBackend(p, 'ns1', 'up').catch((e: Error) => {
    throw new Error(`${e.message}: ${describeFailure(p, 'ns1')}\n--- server log ---\n${pg.log()}`);
  });

  // An established, idle session through pgwarden.
  const session = await connect(p.rwPort, { connectionTimeoutMillis: 5_000 });
  let sessionClosed = false;
  session.on('end', () => (sessionClosed = true));
  t.teardown(() => session.end().catch(() => undefined));
  t.same((await session.query('select 1 as one')).rows, [{ one: 1 }], 'the session works before the cut');

  const w = watch(p, 'ns1');
  w.since();
  await pg.cut();
  await waitForBackend(p, 'ns1', 'down', DEADLINE_MS);
  t.comment(`silent cut: DOWN after ${await w.down} ms; last failure ${describeFailure(p, 'ns1')}; pokes: ${describePokes(w)}`);
  t.ok(w.pokes.some((e) => e.reason.startsWith('check connection lost')), 'keepalive broke the idle check connection and poked the checker');
  await waitFor('the proxied session to be closed (drain on DOWN)', () => sessionClosed, DEADLINE_MS);
  t.pass('the established session was closed');
});

/** SIGSTOP / SIGCONT a server's postmaster and all its children: a hung server, not a dead one. */
function freezer(dataDir: string): { stop(): void; resume(): void } {
  const pid = readPostmasterPid(dataDir)!;
  const stopped = [pid, ...childPids(pid)];
  const signal = (sig: NodeJS.Signals) => {
    for (const x of stopped) {
      try {
        process.kill(x, sig);
      } catch {
        /* gone */
      }
    }
  };
  return { stop: () => signal('SIGSTOP'), resume: () => signal('SIGCONT') };
}
