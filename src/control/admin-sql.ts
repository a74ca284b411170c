// The few statements pgwarden itself runs on a server for failover work — pg_promote(), WAL
// positions for a switchover — over a short-lived connection with the health-check credentials.
// The check user needs `GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer) TO pgwarden;`
// for promote mode and planned switchovers (or be a superuser).
import { Client } from 'pg';
import type { HealthConfig } from '../config/types';
import { parseLsn } from '../health/lsn';
import { AdminSqlError } from '../errors';

const PROMOTE_POLL_MS = 10;

export interface ServerAddress {
  readonly name: string;
  readonly host: string;
  readonly port: number;
}

async function withClient<T>(target: ServerAddress, health: HealthConfig, what: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const client = new Client({
    host: target.host,
    port: target.port,
    user: health.user,
    password: health.password ?? '',
    database: health.database,
    application_name: 'pgwarden-admin',
    connectionTimeoutMillis: Math.max(health.timeout, 2000),
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await fn(client);
  } catch (e) {
    if (e instanceof AdminSqlError) throw e;
    const secret = health.password;
    const msg = secret ? (e as Error).message.split(secret).join('********') : (e as Error).message;
    throw new AdminSqlError(`${what} on ${target.name} (${target.host}:${target.port}) failed: ${msg}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * pg_promote(wait => false), then pg_is_in_recovery() every PROMOTE_POLL_MS on the same
 * connection: resolves once the server accepts writes. pg_promote(true) would do the waiting
 * itself, but it looks only every 100 ms, which a failover would pay on average 50 ms for.
 */
export function promoteServer(target: ServerAddress, health: HealthConfig, waitSeconds = 30): Promise<void> {
  return withClient(target, health, 'pg_promote()', async (c) => {
    const r = await c.query<{ promoted: boolean }>('SELECT pg_promote(false) AS promoted');
    if (!r.rows[0]?.promoted) throw new AdminSqlError(`pg_promote() on ${target.name} was refused`);
    const deadline = Date.now() + waitSeconds * 1000;
    for (;;) {
      const q = await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
      if (q.rows[0]?.r === false) return;
      if (Date.now() > deadline) throw new AdminSqlError(`pg_promote() on ${target.name} did not finish within ${waitSeconds} s`);
      await new Promise((resolve) => setTimeout(resolve, PROMOTE_POLL_MS));
    }
  });
}

/** The primary's current write position (after its sessions are drained: its last LSN). */
export function currentWalLsn(target: ServerAddress, health: HealthConfig): Promise<bigint> {
  return withClient(target, health, 'pg_current_wal_lsn()', async (c) => {
    // A checkpoint-free way to make sure everything written so far is flushed and shipped.
    const r = await c.query<{ lsn: string }>('SELECT pg_current_wal_flush_lsn()::text AS lsn');
    return parseLsn(r.rows[0].lsn);
  });
}

/** A replica's replay position. */
export function replayLsn(target: ServerAddress, health: HealthConfig): Promise<bigint | undefined> {
  return withClient(target, health, 'pg_last_wal_replay_lsn()', async (c) => {
    const r = await c.query<{ lsn: string | null }>('SELECT pg_last_wal_replay_lsn()::text AS lsn');
    return r.rows[0]?.lsn ? parseLsn(r.rows[0].lsn) : undefined;
  });
}
