// The faults of bench/soak, drawn in turn, and what "settled" means after each. A fault returns
// a few details for the results; settle() waits (with a deadline) until the cluster and pgwarden
// are whole again: the soak's primary is pgwarden's primary, every server is up with its role,
// ready and not fenced, both replicas stream from the primary, no extra backend is left, and a
// session through rw reaches the primary.
'use strict';
const { Client } = require('pg');
const { sleep, waitUntil } = require('./failover-procs');

/** Faults that move the primary: the issue's "failovers". */
const FAILOVER_KINDS = new Set(['kill-primary', 'switchover']);

/** The order faults are drawn in: two out of three move the primary (the issue asks for 100+ failovers an hour). */
const SEQUENCE = [
  'kill-primary', 'sigstop-replica', 'switchover',
  'kill-primary', 'flap-replica', 'switchover',
  'kill-primary', 'reload', 'switchover',
  'kill-primary', 'drain-ready', 'switchover',
];

/** --short (CI): each kind once. */
const SHORT_SEQUENCE = ['kill-primary', 'sigstop-replica', 'switchover', 'flap-replica', 'reload', 'drain-ready'];

function makeFaults({ cluster, pg, extraHost, log }) {
  let turn = 0;
  const nextReplica = () => cluster.replicas()[turn++ % 2];
  const backendState = async (name) => (await pg.status()).backends.find((b) => b.name === name);
  const base = () => cluster.nodes.map((n) => ({ name: n.name, port: n.port })).concat(pg.backends().filter((b) => b.fixed));

  return {
    async 'kill-primary'() {
      const old = cluster.primary;
      await cluster.cluster.kill9(old);
      const best = await cluster.bestReplica(cluster.replicas().filter((n) => n !== old));
      await cluster.promote(best);
      const other = cluster.replicas().find((n) => n !== old);
      await cluster.repoint(other);
      const how = await cluster.rejoin(old);
      return { from: old.name, to: best.name, rejoin: how };
    },

    async 'sigstop-replica'() {
      const r = nextReplica();
      cluster.signalAll(r, 'SIGSTOP');
      try {
        await waitUntil(`pgwarden to mark stopped ${r.name} down`, async () => (await backendState(r.name))?.state === 'down', 90_000);
      } finally {
        cluster.signalAll(r, 'SIGCONT');
      }
      return { replica: r.name };
    },

    async 'flap-replica'() {
      const r = nextReplica();
      // Down and up again three times, each time faster than `rise` checks can pass.
      for (let i = 0; i < 3; i++) {
        await cluster.cluster.stop(r, 'fast');
        await cluster.cluster.start(r);
      }
      return { replica: r.name, flaps: 3 };
    },

    async switchover() {
      const old = cluster.primary;
      const to = await cluster.bestReplica();
      const res = await pg.post('/switchover', { to: to.name });
      if (res.status !== 200) throw new Error(`switchover to ${to.name}: HTTP ${res.status} ${JSON.stringify(res.json)}`);
      await cluster.noteNewPrimary(to);
      const other = cluster.replicas().find((n) => n !== old);
      await cluster.repoint(other);
      const how = await cluster.rejoin(old);
      return { from: old.name, to: to.name, rejoin: how, closedIdle: res.json.closedIdle, closedInTransaction: res.json.closedInTransaction, durationMs: res.json.durationMs };
    },

    async reload() {
      const r = nextReplica();
      const extra = { name: 'pgx', host: extraHost, port: r.port };
      const withExtra = await pg.reloadWith([...base(), extra]);
      if (withExtra.status !== 200) throw new Error(`reload adding pgx: HTTP ${withExtra.status} ${JSON.stringify(withExtra.json)}`);
      await waitUntil('pgwarden to see the added pgx up', async () => (await backendState('pgx'))?.state === 'up', 30_000);
      await sleep(2000); // let it take some sessions
      const without = await pg.reloadWith(base());
      if (without.status !== 200) throw new Error(`reload removing pgx: HTTP ${without.status} ${JSON.stringify(without.json)}`);
      // A removed backend stays until its last session ends (long-lived sessions live ≤ 30 s).
      await waitUntil('pgwarden to forget the removed pgx', async () => (await backendState('pgx')) === undefined, 60_000);
      return { added: `pgx → ${extraHost}:${r.port}` };
    },

    async 'drain-ready'() {
      const r = nextReplica();
      const drained = await pg.post(`/backends/${r.name}/drain`);
      if (drained.status !== 200) throw new Error(`drain ${r.name}: HTTP ${drained.status}`);
      let emptied = true;
      try {
        await waitUntil(`${r.name}'s sessions to end after drain`, async () => (await backendState(r.name))?.sessions === 0, 45_000);
      } catch {
        emptied = false;
      }
      const ready = await pg.post(`/backends/${r.name}/ready`);
      if (ready.status !== 200) throw new Error(`ready ${r.name}: HTTP ${ready.status}`);
      return { replica: r.name, emptied };
    },
  };
}

/** Until the cluster and pgwarden are whole again (see the top of the file); throws after `timeoutMs`. */
async function settle({ cluster, pg, rwPort, fixedBackends = [], timeoutMs = 120_000 }) {
  const deadline = Date.now() + timeoutMs;
  await cluster.waitStreaming(cluster.replicas().map((n) => n.name), { timeoutMs });
  for (;;) {
    const why = await notSettled({ cluster, pg, rwPort, fixedBackends });
    if (why === undefined) return;
    if (Date.now() > deadline) throw new Error(`pgwarden did not settle within ${timeoutMs} ms: ${why}`);
    await sleep(100);
  }
}

/** Why pgwarden is not settled yet, or undefined when it is. */
async function notSettled({ cluster, pg, rwPort, fixedBackends }) {
  const s = await pg.status().catch(() => undefined);
  if (s === undefined) return 'no /status';
  if (s.primary !== cluster.primary.name) return `primary ${s.primary} (expected ${cluster.primary.name})`;
  for (const n of cluster.nodes) {
    const b = s.backends.find((x) => x.name === n.name);
    const role = n === cluster.primary ? 'primary' : 'replica';
    if (b === undefined || b.state !== 'up' || b.role !== role || b.fenced || b.adminState !== 'ready') {
      // A fence left by a switchover whose old primary is a replica again: `ready` clears it.
      if (b?.fenced && b.role === 'replica' && b.state === 'up') await pg.post(`/backends/${n.name}/ready`);
      return `${n.name}: ${b ? `${b.state} ${b.role} ${b.adminState}${b.fenced ? ' fenced' : ''}` : 'missing'}`;
    }
  }
  const extra = s.backends.filter((b) => !cluster.nodes.some((n) => n.name === b.name) && !fixedBackends.includes(b.name));
  if (extra.length > 0) return `extra backends ${extra.map((b) => b.name).join(', ')}`;
  const port = await serverPortThrough(rwPort);
  if (port !== cluster.primary.port) return `rw reached port ${port}`;
  return undefined;
}

async function serverPortThrough(port) {
  const c = new Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 3000, query_timeout: 3000 });
  c.on('error', () => {});
  try {
    await c.connect();
    const { rows } = await c.query('SELECT inet_server_port() AS port');
    return rows[0].port;
  } catch {
    return undefined;
  } finally {
    await c.end().catch(() => {});
  }
}

module.exports = { makeFaults, settle, SEQUENCE, SHORT_SEQUENCE, FAILOVER_KINDS };
