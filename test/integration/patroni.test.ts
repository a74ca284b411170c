// pgwarden in front of Patroni (issue 16, point 1): a real three-node Patroni cluster on one etcd
// member, synchronous_mode on, and pgwarden in follow mode with the three nodes as backends.
// Patroni decides every change; pgwarden only follows it. One cluster for the whole file, in
// order: (a) a plain `patronictl switchover` under pgbench -C, with health.patroni (REST and the
// DCS failover key) and no drain by hand, (b) a kill -9 of the leader's
// postmaster and Patroni's own failover to the synchronous standby under a writer that records
// what was acknowledged, (c) on_primary_change ran once for each of the two changes.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import t from 'tap';
import type { PatroniNode } from '../../src/harness/patroni';
import { patroniAvailable, startPatroni } from '../helpers/patroni';
import { pgbench } from '../helpers/pgbench';
import { CHECK_USER, healthConfig, startProxy, waitFor, whoAnswers, type RunningProxy } from '../helpers/proxy';

const skip = patroniAvailable();
if (skip) t.comment(`skipped: ${skip}`);

const QUEUE_TIMEOUT_MS = 30_000;

interface Attempt {
  id: number;
  start: number;
  end: number;
  ok: boolean;
  error?: string;
}

/** Until pgwarden routes writes to `node` and sees the two others as up replicas. */
function waitForRouting(p: RunningProxy, primary: PatroniNode, nodes: readonly PatroniNode[], timeoutMs = 120_000): Promise<void> {
  return waitFor(
    `pgwarden: ${primary.name} the primary, the others up replicas`,
    () =>
      p.app.topology.primary()?.name === primary.name &&
      nodes.filter((n) => n !== primary).every((n) => {
        const v = p.app.topology.get(n.name);
        return v?.state === 'up' && v.role === 'replica';
      }),
    timeoutMs,
  );
}

t.test('pgwarden follows Patroni: switchover, kill -9 of the leader, on_primary_change', { skip }, async (t) => {
  const patroni = await startPatroni(t, { synchronousMode: true, checkUser: CHECK_USER });
  const dir = mkdtempSync(path.join(tmpdir(), 'pgwarden-patroni-hooks-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const changes = path.join(dir, 'primary-changes');
  // health.patroni: every node's REST API (each on a port of its own here, all on 127.0.0.1) and
  // Patroni's etcd, where `patronictl switchover` writes the failover key before the leader stops.
  const p = await startProxy(t, patroni, {
    backends: (nodes) => nodes.map((n) => `  - { name: ${n.name}, host: 127.0.0.1, port: ${n.port}, patroni_port: ${patroni.node(n.name).restPort} }`).join('\n'),
    health: healthConfig(`  patroni:
    interval: 500ms
    dcs:
      scope: ${patroni.scope}
      namespace: ${patroni.namespace}
      etcd: { endpoints: [${patroni.etcdEndpoints().join(', ')}] }`),
    failover: `  mode: follow
  queue_timeout: ${QUEUE_TIMEOUT_MS / 1000}s
  queue_size: 200`,
    extra: `hooks:
  on_primary_change:
    - command: [sh, -c, 'echo "$PGWARDEN_OLD_PRIMARY_NAME $PGWARDEN_NEW_PRIMARY_NAME" >> ${changes}']`,
  });
  const first = (await patroni.leader())!;
  t.ok(first, `Patroni's leader: ${first?.name}`);
  await waitForRouting(p, first, patroni.nodes);
  const expectedChanges: string[] = [];

  await t.test('(a) plain patronictl switchover under pgbench -C: no failed transaction, every one on the new leader', async (t) => {
    await waitFor(
      "/status shows every node's Patroni member and a reachable DCS",
      () => {
        const s = p.app.status();
        return s.patroni?.dcs?.reachable === true && s.backends.every((b) => b.patroni?.reachable === true && b.patroni.name === b.name);
      },
      30_000,
    ).catch((err: Error) => {
      const s = p.app.status();
      t.comment(JSON.stringify({ dcs: s.patroni, members: s.backends.map((b) => b.patroni) }));
      for (const l of p.logs.filter((l) => String(l.event).startsWith('patroni.'))) t.comment(JSON.stringify(l));
      throw err;
    });
    const before = p.app.status();
    t.equal(before.patroni?.dcs?.leader, first.name, `the DCS leader key names ${first.name}`);
    t.same(
      before.backends.map((b) => [b.name, b.patroni?.role === 'master' || b.patroni?.role === 'primary' ? 'leader' : b.patroni?.role]),
      patroni.nodes.map((n) => [n.name, n === first ? 'leader' : 'replica']),
      "/status: each backend's Patroni role",
    );
    const init = await pgbench(p.rwPort, ['-i', '-s', '1', '-q']);
    t.equal(init.code, 0, 'pgbench -i through rw', { output: init.output });
    const target = (await patroni.members()).find((m) => m.role === 'sync_standby')!;
    t.ok(target, `the synchronous standby, the only replica Patroni switches over to in synchronous_mode: ${target?.name}`);
    const started = Date.now();
    // One thread per client (-j 8): see the README on pgbench -C with fewer threads than clients.
    // 45 s: longer than the wait below can take (30 s at most) plus the switchover, so pgbench is
    // surely reconnecting through the advance drain and the switchover whatever the load.
    const run = pgbench(p.rwPort, ['-C', '-c', '8', '-j', '8', '-T', '45', '-n']);
    let queuedAndServed = 0;
    p.app.bus.on('session.dequeued', (e) => e.listener === 'rw' && e.outcome === 'served' && queuedAndServed++);
    await waitFor(
      'pgbench running for 5 s with committed transactions',
      async () => Date.now() - started >= 5000 && Number((await patroni.query(first, 'SELECT count(*) AS n FROM pgbench_history'))[0].n) > 100,
      30_000,
    );
    // No drain by hand: Patroni stops the old leader with a fast shutdown right after its
    // CHECKPOINT, and pgwarden sees the switchover coming only through the failover key in
    // Patroni's etcd. It drains the leader from that moment: new write sessions wait in the
    // queue, the ones on the leader finish (pgbench -C: one transaction each), and none is left
    // when Patroni stops it.
    const { from, to, output: ctl } = await patroni.switchover(target.name);
    t.comment(`patronictl: ${ctl.split('\n').find((l) => /switched over/i.test(l)) ?? ctl.trim()}`);
    t.equal(from.name, first.name, `switched over from ${from.name}`);
    expectedChanges.push(`${from.name} ${to.name}`);
    await waitForRouting(p, to, patroni.nodes);
    for (const e of p.app.timeline.recent().filter((e) => /^(patroni|primary|backend)\./.test(e.event))) t.comment(`${e.time} ${e.event}: ${e.message}`);
    const advance = p.app.timeline.recent().filter((e) => e.event === 'patroni.switchover');
    t.ok(advance.some((e) => e.backend === first.name), `the failover key drained ${first.name} in advance`);
    await waitFor(`the advance drain of ${from.name} is over`, () => p.app.topology.get(from.name)?.patroniDrain === undefined, 60_000);
    t.equal(p.app.topology.get(from.name)?.adminState, 'ready', "the operator's admin state was never touched");

    const { code, output } = await run;
    for (const line of output.split('\n').filter((l) => /^(tps|number of|pgbench: error|client \d+ aborted)/.test(l))) t.comment(`pgbench: ${line}`);
    t.equal(code, 0, 'pgbench exits 0');
    if (/aborted/.test(output)) {
      // Which sessions on the old leader ended other than by the client's Terminate, and when
      // each began (its end minus its duration), against the moment the advance drain began.
      const drainAt = p.app.timeline.recent().find((e) => e.event === 'patroni.drain' && e.backend === from.name)?.time;
      t.comment(`advance drain of ${from.name} began at ${drainAt}`);
      for (const l of p.logs.filter((l) => l.event === 'session.end' && l.backend === from.name && l.cause !== 'client-terminate')) {
        const end = Date.parse(String(l.time));
        t.comment(`session on ${from.name}: began ${new Date(end - Number(l.durationMs)).toISOString()}, ended ${l.time}: ${l.cause} in ${l.phase}${l.detail ? ` (${l.detail})` : ''}`);
      }
      const leaderLog = readFileSync(from.logFile, 'utf8').split('\n');
      for (const line of leaderLog.filter((l) => /switchover|[Dd]emot|checkpoint|shut ?down|terminat/.test(l)).slice(-30)) t.comment(`${from.name}: ${line}`);
    }
    t.notMatch(output, /aborted/, 'no client aborted', { output });
    const failed = /number of failed transactions: (\d+)/.exec(output);
    if (failed) t.equal(Number(failed[1]), 0, 'pgbench reports 0 failed transactions');
    const processed = Number(/number of transactions actually processed: (\d+)/.exec(output)?.[1] ?? 0);
    t.ok(processed > 0, `pgbench processed ${processed} transactions`);
    t.ok(queuedAndServed > 0, `pgbench connects waited in the rw queue through the switchover and were served: ${queuedAndServed}`);
    t.same(await whoAnswers(p.rwPort), { port: to.port, inRecovery: false }, `a new rw session lands on the new leader ${to.name}`);
    const [{ n }] = await patroni.query(to, 'SELECT count(*) AS n FROM pgbench_history');
    t.equal(Number(n), processed, `every transaction pgbench counted is on ${to.name}`);
  });

  await t.test('(b) kill -9 of the leader with synchronous_mode: no acknowledged write lost, every connect in the gap waited', async (t) => {
    const leader = (await patroni.waitHealthy())!;
    await waitForRouting(p, leader, patroni.nodes);
    await patroni.query(leader, 'CREATE TABLE acked (id int PRIMARY KEY)');

    // The application: one new connection per write; a write is acknowledged once COMMIT
    // (autocommit) returned. A failed one is retried as a new id after a short pause.
    const writes: Attempt[] = [];
    let stop = false;
    let nextId = 0;
    const writer = (async () => {
      while (!stop) {
        const a: Attempt = { id: ++nextId, start: Date.now(), end: 0, ok: false };
        const c = new Client({ host: '127.0.0.1', port: p.rwPort, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 2 * QUEUE_TIMEOUT_MS });
        c.on('error', () => undefined);
        try {
          await c.connect();
          await c.query('INSERT INTO acked (id) VALUES ($1)', [a.id]);
          a.ok = true;
        } catch (e) {
          a.error = `${(e as { code?: string }).code ?? ''} ${(e as Error).message}`.trim();
        } finally {
          a.end = Date.now();
          writes.push(a);
          await c.end().catch(() => undefined);
        }
        if (!a.ok) await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const acked = (since = 0) => writes.filter((a) => a.ok && a.start > since).length;
    await waitFor('20 acknowledged writes', () => acked() >= 20);

    // Besides the writer, a connect attempt every 200 ms that does not wait for the one before:
    // the clients that arrive while there is no primary.
    const connects: Attempt[] = [];
    let connectId = 0;
    const pending: Promise<void>[] = [];
    const connector = setInterval(() => {
      const a: Attempt = { id: ++connectId, start: Date.now(), end: 0, ok: false };
      connects.push(a);
      const c = new Client({ host: '127.0.0.1', port: p.rwPort, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 2 * QUEUE_TIMEOUT_MS });
      c.on('error', () => undefined);
      pending.push(
        c
          .connect()
          .then(() => c.query('SELECT pg_is_in_recovery() AS r'))
          .then((r) => {
            a.ok = r.rows[0].r === false;
            if (!a.ok) a.error = 'landed on a server in recovery';
          })
          .catch((e: Error & { code?: string }) => {
            a.error = `${e.code ?? ''} ${e.message}`.trim();
          })
          .finally(() => {
            a.end = Date.now();
            return c.end().catch(() => undefined);
          }),
      );
    }, 200);
    t.teardown(() => clearInterval(connector));

    const killAt = await patroni.kill9Postmaster(leader);
    const promoted = await patroni.waitForNewLeader(leader).catch((err: Error) => {
      t.comment(patroni.logTails(80));
      throw err;
    });
    t.comment(`Patroni promoted ${promoted.name}`);
    await waitFor(`pgwarden routes writes to ${promoted.name}`, () => p.app.topology.primary()?.name === promoted.name, 60_000);
    const routedAt = Date.now();
    expectedChanges.push(`${leader.name} ${promoted.name}`);
    await waitFor('20 acknowledged writes after the kill', () => acked(killAt) >= 20, 60_000);
    clearInterval(connector);
    stop = true;
    await writer;
    await Promise.all(pending);

    const onPromoted = new Set((await patroni.query(promoted, 'SELECT id FROM acked')).map((r) => Number(r.id)));
    const ok = writes.filter((a) => a.ok);
    const failed = writes.filter((a) => !a.ok);
    t.comment(`writes ${writes.length}: acknowledged ${ok.length}, failed ${failed.length}; kill → pgwarden routing to ${promoted.name}: ${routedAt - killAt} ms`);
    for (const f of failed) t.comment(`failed write ${f.id}: ${f.start - killAt} → ${f.end - killAt} ms after the kill: ${f.error}; row on ${promoted.name}: ${onPromoted.has(f.id)}`);
    t.same(ok.filter((a) => !onPromoted.has(a.id)).map((a) => a.id), [], `every acknowledged write is on ${promoted.name}`);
    // One write at a time: at most the one in flight at the kill may fail (never acknowledged).
    t.same(writes.filter((a) => !a.ok && a.start > killAt).map((a) => a.id), [], 'no write started after the kill failed');
    t.ok(failed.length <= 1, `at most one failed write, the one in flight at the kill: ${failed.length}`);

    const inGap = connects.filter((a) => a.start >= killAt && a.start <= routedAt);
    const longest = Math.max(0, ...inGap.map((a) => a.end - a.start));
    t.comment(`${inGap.length} connects during the gap; the longest took ${longest} ms (queue_timeout ${QUEUE_TIMEOUT_MS} ms)`);
    for (const f of connects.filter((a) => !a.ok)) t.comment(`failed connect ${f.id}: ${f.start - killAt} → ${f.end - killAt} ms after the kill: ${f.error}`);
    t.ok(inGap.length > 0, 'clients connected during the gap');
    t.same(inGap.filter((a) => !a.ok).map((a) => a.id), [], 'every connect during the gap succeeded, on the new primary');
    t.same(connects.filter((a) => a.start > killAt && !a.ok).map((a) => a.id), [], 'no connect after the kill failed');
  });

  await t.test('(c) on_primary_change ran once per change', async (t) => {
    // The old leaders are back as replicas (pg_rewind where needed): nothing is changing any more.
    const leader = await patroni.waitHealthy();
    await waitForRouting(p, leader, patroni.nodes);
    const read = () => readFileSync(changes, 'utf8').trim().split('\n').filter((l) => l !== '');
    await waitFor(`${expectedChanges.length} on_primary_change runs`, () => read().length >= expectedChanges.length, 30_000);
    t.same(read(), expectedChanges, `one run per change, old → new: ${expectedChanges.join(', ')}`);
  });
});
