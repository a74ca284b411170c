// The few statements pgwarden itself runs on a server for failover work — pg_promote(), WAL
// positions for a switchover — over a short-lived connection with the health-check credentials
// and the checks' TLS (`tls.server`).
// The check user needs `GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer) TO pgwarden;`
// for promote mode and planned switchovers (or be a superuser).
import type { ConnectionOptions } from 'node:tls';
import { Client } from 'pg';
import type { HealthConfig, TlsConfig } from '../config/types';
import { parseLsn } from '../health/lsn';
import { serverRefusedTls } from '../health/failure-classify';
import { AdminSqlError } from '../errors';
import { serverLegOptions } from '../net/tls-credentials';

const PROMOTE_POLL_MS = 10;

export interface ServerAddress {
  readonly name: string;
  readonly host: string;
  readonly port: number;
}

/**
 * How pgwarden logs in to a server for these statements: the health-check user, over TLS as
 * `tls.server` says (like the checks). A Config is one.
 */
export interface ServerLogin {
  readonly health: HealthConfig;
  readonly tls: TlsConfig;
}

function newClient(target: ServerAddress, health: HealthConfig, ssl: ConnectionOptions | false): Client {
  const client = new Client({
    host: target.host,
    port: target.port,
    user: health.user,
    password: health.password ?? '',
    database: health.database,
    // false rather than undefined: pg would otherwise read PGSSLMODE from the environment.
    ssl,
    application_name: 'pgwarden-admin',
    connectionTimeoutMillis: Math.max(health.timeout, 2000),
  });
  client.on('error', () => undefined);
  return client;
}

async function withClient<T>(target: ServerAddress, login: ServerLogin, what: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const { health } = login;
  let client: Client | undefined;
  try {
    // server_ca_file is read here, once per statement's connection: these are rare (a promotion, a switchover).
    const ssl = serverLegOptions(login.tls, target.host) ?? false;
    client = newClient(target, health, ssl);
    try {
      await client.connect();
    } catch (e) {
      // sslmode=prefer: a server without TLS is asked again in plain text.
      if (ssl === false || login.tls.server !== 'prefer' || !serverRefusedTls(e)) throw e;
      await client.end().catch(() => undefined);
      client = newClient(target, health, false);
      await client.connect();
    }
    return await fn(client);
  } catch (e) {
    if (e instanceof AdminSqlError) throw e;
    const secret = health.password;
    const msg = secret ? (e as Error).message.split(secret).join('********') : (e as Error).message;
    throw new AdminSqlError(`${what} on ${target.name} (${target.host}:${target.port}) failed: ${msg}`);
  } finally {
    await client?.end().catch(() => undefined);
  }
}

/**
 * pg_promote(wait => false), then pg_is_in_recovery() every PROMOTE_POLL_MS on the same
 * connection: resolves once the server accepts writes. pg_promote(true) would do the waiting
 * itself, but it looks only every 100 ms, which a failover would pay on average 50 ms for.
 */
export function promoteServer(target: ServerAddress, login: ServerLogin, waitSeconds = 30): Promise<void> {
  return withClient(target, login, 'pg_promote()', async (c) => {
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
export function currentWalLsn(target: ServerAddress, login: ServerLogin): Promise<bigint> {
  return withClient(target, login, 'pg_current_wal_lsn()', async (c) => {
    // A checkpoint-free way to make sure everything written so far is flushed and shipped.
    const r = await c.query<{ lsn: string }>('SELECT pg_current_wal_flush_lsn()::text AS lsn');
    return parseLsn(r.rows[0].lsn);
  });
}

/** A replica's replay position. */
export function replayLsn(target: ServerAddress, login: ServerLogin): Promise<bigint | undefined> {
  return withClient(target, login, 'pg_last_wal_replay_lsn()', async (c) => {
    const r = await c.query<{ lsn: string | null }>('SELECT pg_last_wal_replay_lsn()::text AS lsn');
    return r.rows[0]?.lsn ? parseLsn(r.rows[0].lsn) : undefined;
  });
}
