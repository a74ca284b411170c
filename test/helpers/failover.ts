// Small tools for the failover integration tests: find a session's server process, wait for
// the error a server or pgwarden sends to an idle session, hold a replica's WAL replay back.
import type { Client } from 'pg';
import type { PgCluster, PgNode } from '../../src/harness/cluster';
import type { RecentEvent } from '../../src/events';
import { childPids, processAlive, readPostmasterPid } from '../../src/harness/run';
import { connect, waitFor, type RunningProxy } from './proxy';

/** The PostgreSQL error a pg Client saw (ErrorResponse fields pg copies onto the Error). */
export interface PgError extends Error {
  code?: string;
  severity?: string;
}

/**
 * The first error the client sees while idle. pg emits an ErrorResponse that arrives with no
 * query running as an 'error' event; a plain close is an 'end' (reported as undefined code).
 */
export function nextError(c: Client): Promise<PgError> {
  return new Promise((resolve) => {
    c.once('error', (e: PgError) => resolve(e));
    c.once('end', () => resolve(Object.assign(new Error('connection closed without an ErrorResponse'), { code: undefined })));
  });
}

/** A session through `port` that landed on `node` (others are closed), and its server pid. */
export async function sessionOn(port: number, node: PgNode, attempts = 20): Promise<{ client: Client; pid: number }> {
  for (let i = 0; i < attempts; i++) {
    const c = await connect(port);
    const r = await c.query('select inet_server_port() as port, pg_backend_pid() as pid');
    if (Number(r.rows[0].port) === node.port) return { client: c, pid: Number(r.rows[0].pid) };
    await c.end();
  }
  throw new Error(`no session through port ${port} reached ${node.name} in ${attempts} attempts`);
}

/** The server port a fresh session through `port` reaches. */
export async function serverPortVia(port: number): Promise<number> {
  const c = await connect(port);
  try {
    return Number((await c.query('select inet_server_port() as port')).rows[0].port);
  } finally {
    await c.end();
  }
}

export async function pauseReplay(cluster: PgCluster, replica: PgNode): Promise<void> {
  await cluster.query(replica, 'select pg_wal_replay_pause()');
  // Pausing is requested, then takes effect at the next record: wait until it has.
  await waitFor(`${replica.name} replay paused`, async () => (await cluster.query(replica, 'select pg_get_wal_replay_pause_state() as s'))[0].s === 'paused');
}

export async function resumeReplay(cluster: PgCluster, replica: PgNode): Promise<void> {
  await cluster.query(replica, 'select pg_wal_replay_resume()');
}

/** About `megabytes` of WAL on the primary (rows of 1 kB into a scratch table). */
export async function writeWal(cluster: PgCluster, primary: PgNode, megabytes: number): Promise<void> {
  await cluster.query(primary, 'create table if not exists wal_filler (id int, pad text)');
  await cluster.query(primary, `insert into wal_filler select g, repeat('x', 1000) from generate_series(1, ${Math.ceil(megabytes * 1000)}) g`);
}

/** Timeline entries named `event` (the status page's recent events). */
export function timelineEvents(p: RunningProxy, event: string): RecentEvent[] {
  return p.app.timeline.recent().filter((e) => e.event === event);
}

/** Structured log lines whose `event` field is `event`. */
export function logLines(p: RunningProxy, event: string): Record<string, unknown>[] {
  return p.logs.filter((l) => l.event === event);
}

/** Read a hook's marker file once it exists and is complete (`env` output ends in a newline). */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

export { healthConfig } from './proxy';

/**
 * SIGKILL `node`'s postmaster and return the moment it was sent (cluster.kill9 scans /proc
 * before it kills, so a timestamp taken around it is tens of milliseconds early). Resolves once
 * the orphaned children are gone, like cluster.kill9.
 */
export async function sigkillPostmaster(cluster: PgCluster, node: PgNode): Promise<number> {
  const pid = readPostmasterPid(node.dataDir);
  if (pid === undefined || !processAlive(pid)) throw new Error(`${node.name} is not running`);
  const children = childPids(pid);
  process.kill(pid, 'SIGKILL');
  const at = Date.now();
  await waitFor(`${node.name}: children of postmaster ${pid} to exit`, () => children.every((c) => !processAlive(c)), 20_000);
  await cluster.kill9(node); // a no-op for the server by now; keeps the harness's own checks
  return at;
}
