// `check: postgres`: connect and authenticate as the check user (pg handles trust, md5 and
// SCRAM), then one query that reports the server's role and WAL positions. Each failure is named
// by the layer where it happened, HAProxy style, so an operator sees "L7AUTH" rather than
// "down" and knows to look at pg_hba.conf or the password instead of the network.
import net from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { Client } from 'pg';
import { applyKeepalive, type KeepaliveOptions } from '../net/keepalive';
import { parseLsn } from './lsn';
import type { FailureLayer, Probe, ProbeResult } from './types';

export interface PostgresProbeOptions {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password?: string;
  readonly database: string;
  /** Budget for the whole check: connect, authenticate and query. */
  readonly timeoutMs: number;
  /** TLS for the check connection; off unless given (no PGSSLMODE surprises from the environment). */
  readonly ssl?: boolean | ConnectionOptions;
  /**
   * TCP_USER_TIMEOUT for the kept check connection, normally health `timeout × fall`. With it a
   * server that vanished without FIN or RST breaks the idle connection within about idle (1 s)
   * plus this, and onConnectionLost brings the next check forward. Absent: keepalive alone
   * (1 s idle, 1 s between probes, 3 probes).
   */
  readonly userTimeoutMs?: number;
}

/**
 * The check connection is idle between checks, which may be a minute apart: keepalive probes
 * are what notice a silent server in that time. A second of idleness before the first probe
 * costs one tiny packet a second per backend.
 */
export function checkKeepalive(userTimeoutMs: number | undefined): KeepaliveOptions {
  const intervalMs = 1_000;
  return {
    idleMs: 1_000,
    intervalMs,
    // Linux lets TCP_USER_TIMEOUT override the count; the count still bounds it elsewhere.
    count: Math.max(1, Math.ceil((userTimeoutMs ?? 3 * intervalMs) / intervalMs)),
    ...(userTimeoutMs !== undefined && userTimeoutMs > 0 && { userTimeoutMs }),
  };
}

/**
 * One round trip. pg_current_wal_lsn() raises an error during recovery, so it is only evaluated on
 * a primary (the CASE guards it; the function is volatile, so it is never folded early).
 * Replay lag is 0 when everything received has been replayed: pg_last_xact_replay_timestamp()
 * stays at the last replayed commit on an idle primary, and now() minus it would grow forever.
 */
export const CHECK_QUERY = `SELECT
  pg_is_in_recovery() AS in_recovery,
  CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS current_lsn,
  pg_last_wal_receive_lsn()::text AS receive_lsn,
  pg_last_wal_replay_lsn()::text AS replay_lsn,
  CASE
    WHEN NOT pg_is_in_recovery() THEN NULL
    WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
    ELSE GREATEST(0, EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()))
  END::float8 AS replay_lag_seconds,
  -- The timeline of a primary is the first 8 hex digits of its current WAL file name; the
  -- split-brain rule keeps the primary on the newest timeline.
  CASE WHEN pg_is_in_recovery() THEN NULL
    ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS timeline`;

interface CheckRow {
  in_recovery: boolean;
  current_lsn: string | null;
  receive_lsn: string | null;
  replay_lsn: string | null;
  replay_lag_seconds: number | null;
  timeline: number | null;
}

export type Phase = 'connecting' | 'authenticating' | 'querying';

export interface PostgresProbeHooks {
  /**
   * The kept check connection broke between checks (server crash, shutdown, network reset):
   * the checker should look again now instead of waiting out its interval.
   */
  onConnectionLost?(reason: string): void;
}

/**
 * The check connection is kept open between checks and re-used while it works: on a loaded
 * server a new backend process (fork + authentication) can take most of a second, and a check
 * that times out because the server is *busy* would mark a healthy primary down. A failure
 * drops the connection, so the next check connects and authenticates afresh (and an L7AUTH is
 * seen then). A kept connection also notices a crash at once (onConnectionLost).
 */
export function postgresProbe(opts: PostgresProbeOptions, hooks: PostgresProbeHooks = {}): Probe {
  let kept: Client | undefined;
  let closed = false;
  const drop = (client: Client, graceful: boolean) => {
    if (kept === client) kept = undefined;
    close(client, graceful);
  };
  const probe = (signal: AbortSignal) =>
    checkOnce(opts, signal, kept, (client, ok) => {
      if (ok && !closed) {
        if (kept !== client) watch(client);
        kept = client;
      } else drop(client, false);
    });
  const watch = (client: Client) => {
    const lost = (why: string) => {
      if (kept !== client) return;
      drop(client, false);
      if (!closed) hooks.onConnectionLost?.(why);
    };
    client.on('error', (e: Error) => lost(redact(e.message, opts.password)));
    client.on('end', () => lost('the server closed the check connection'));
  };
  return Object.assign(probe, {
    close: () => {
      closed = true;
      if (kept) drop(kept, true);
    },
  });
}

function checkOnce(
  opts: PostgresProbeOptions,
  signal: AbortSignal,
  existing: Client | undefined,
  done: (client: Client, ok: boolean) => void,
): Promise<ProbeResult> {
  const startedAt = performance.now();
  const elapsed = (): number => Math.round(performance.now() - startedAt);
  const where = `${opts.host}:${opts.port}`;

  return new Promise<ProbeResult>((resolve) => {
    let settled = false;
    let phase: Phase = existing ? 'querying' : 'connecting';
    const client =
      existing ??
      new Client({
        host: opts.host,
        port: opts.port,
        user: opts.user,
        // '' rather than undefined: pg would otherwise consult PGPASSWORD and ~/.pgpass.
        password: opts.password ?? '',
        database: opts.database,
        ssl: opts.ssl ?? false,
        application_name: 'pgwarden-check',
        connectionTimeoutMillis: opts.timeoutMs,
        statement_timeout: opts.timeoutMs,
      });
    if (!existing) {
      // Without a listener an 'error' event (a reset after we settled) would crash the process.
      client.on('error', () => {});
      client.connection.once('connect', () => {
        if (phase === 'connecting') phase = 'authenticating';
        // Still the TCP socket here (a TLS upgrade wraps it later); the options live on its descriptor.
        const socket = client.connection.stream;
        if (socket instanceof net.Socket) applyKeepalive(socket, checkKeepalive(opts.userTimeoutMs));
      });
    }

    const finish = (result: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      signal.removeEventListener('abort', onAbort);
      done(client, result.ok);
      resolve(result);
    };
    const fail = (layer: FailureLayer, message: string): void =>
      finish({ ok: false, layer, message: redact(message, opts.password), durationMs: elapsed() });
    const timedOut = (what: string): void =>
      fail(phase === 'connecting' ? 'L4TOUT' : 'L7TOUT', `${what} while ${phase} to ${where}`);
    const onAbort = (): void => timedOut('check aborted');

    const deadline = setTimeout(() => timedOut(`check timed out after ${opts.timeoutMs} ms`), opts.timeoutMs);
    deadline.unref();
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });

    (existing ? Promise.resolve() : client.connect())
      .then(() => {
        phase = 'querying';
        return client.query<CheckRow>(CHECK_QUERY);
      })
      .then(
        (res) => {
          const row = res.rows[0];
          if (row === undefined) return fail('L7QUERY', `check query returned no row from ${where}`);
          finish(toSuccess(row, elapsed()));
        },
        (err: unknown) => {
          const failure = classify(err, phase);
          fail(failure.layer, failure.message.includes(where) ? failure.message : `${where}: ${failure.message}`);
        },
      )
      .catch((err: unknown) => fail('L7QUERY', `unexpected check result from ${where}: ${String(err)}`));
  });
}

function toSuccess(row: CheckRow, durationMs: number): ProbeResult {
  if (!row.in_recovery) {
    return {
      ok: true,
      role: 'primary',
      ...lsnField('currentLsn', row.current_lsn),
      ...(row.timeline !== null && { timeline: Number(row.timeline) }),
      durationMs,
    };
  }
  return {
    ok: true,
    role: 'replica',
    ...lsnField('receiveLsn', row.receive_lsn),
    ...lsnField('replayLsn', row.replay_lsn),
    // NULL when the replica has not replayed any transaction yet: lag unknown, not zero.
    ...(row.replay_lag_seconds !== null && { replayLagSeconds: Number(row.replay_lag_seconds) }),
    durationMs,
  };
}

function lsnField<K extends string>(key: K, text: string | null): { [P in K]?: bigint } {
  return (text === null ? {} : { [key]: parseLsn(text) }) as { [P in K]?: bigint };
}

/** Graceful goodbye (Terminate) when closing a working connection; otherwise tear it down now. */
function close(client: Client, graceful: boolean): void {
  client.end().catch(() => {});
  if (!graceful) client.connection.stream.destroy();
}

interface Classified {
  readonly layer: FailureLayer;
  readonly message: string;
}

/** Where did it fail? Server errors by SQLSTATE class, socket errors by errno, pg's own by text. */
export function classify(err: unknown, phase: Phase): Classified {
  const e = (err ?? {}) as { code?: unknown; message?: unknown; severity?: unknown };
  const message = typeof e.message === 'string' && e.message !== '' ? e.message : String(err);
  const code = typeof e.code === 'string' ? e.code : undefined;

  // An ErrorResponse from the server carries a SQLSTATE (Appendix A, PostgreSQL Error Codes).
  if (code !== undefined && typeof e.severity === 'string' && /^[0-9A-Z]{5}$/.test(code)) {
    const withState = `${message} (SQLSTATE ${code})`;
    if (code.startsWith('28')) return { layer: 'L7AUTH', message: withState }; // invalid_authorization_specification, invalid_password
    if (code === '57014') return { layer: 'L7TOUT', message: withState }; // query_canceled: statement_timeout
    return { layer: 'L7QUERY', message: withState }; // e.g. 57P03 cannot_connect_now, 3D000 database missing
  }
  if (code === 'ETIMEDOUT') return { layer: 'L4TOUT', message };
  if (code !== undefined && /^E[A-Z]+$/.test(code)) return { layer: 'L4CON', message }; // ECONNREFUSED, ECONNRESET, EHOSTUNREACH ...
  if (isTlsError(code, message)) return { layer: 'L6TLS', message };
  if (message === 'timeout expired') {
    // pg's connectionTimeoutMillis covers connect and authentication.
    return { layer: phase === 'connecting' ? 'L4TOUT' : 'L7TOUT', message: `connection timeout expired while ${phase}` };
  }
  if (message === 'Query read timeout') return { layer: 'L7TOUT', message: 'check query timed out' };
  if (/client password must be/.test(message)) {
    return { layer: 'L7AUTH', message: `the server asked for a password and none is configured for the check user (${message})` };
  }
  if (/password|SASL|SCRAM/i.test(message)) return { layer: 'L7AUTH', message };
  if (message.startsWith('Connection terminated')) {
    // The server closed the connection: a shutdown or a crash in progress.
    return { layer: phase === 'querying' ? 'L7QUERY' : 'L4CON', message: `${message} while ${phase}` };
  }
  return { layer: phase === 'connecting' ? 'L4CON' : 'L7QUERY', message };
}

function isTlsError(code: string | undefined, message: string): boolean {
  if (code !== undefined && /^(ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_)/.test(code)) return true;
  return /\bSSL\b|\bTLS\b/.test(message);
}

/** The failure message must never carry the password, whatever a library put into it. */
function redact(message: string, password: string | undefined): string {
  return password ? message.split(password).join('********') : message;
}
