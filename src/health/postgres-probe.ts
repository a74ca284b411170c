// `check: postgres`: connect and authenticate as the check user (pg handles trust, md5 and
// SCRAM), then one query (check-query.ts) that reports the server's role and WAL positions.
// Each failure is named by the layer where it happened, HAProxy style, so an operator sees
// "L7AUTH" rather than "down" and knows to look at pg_hba.conf or the password instead of the
// network. `poll` is the failover watch's role poll on the same kept connection. A check's result
// also says where its time went (connect, tls, auth, query: phase-timer.ts), for the
// check-latency-by-layer histogram; it changes nothing in how the check decides.
import net from 'node:net';
import type { ConnectionOptions, TLSSocket } from 'node:tls';
import { Client } from 'pg';
import { applyKeepalive, type KeepaliveOptions } from '../net/keepalive';
import { CheckSession, queryMessage, type RoundTrip } from './check-session';
import { CHECK_QUERY, checkRowToResult } from './check-query';
import { PhaseTimer } from './phase-timer';
import { classify, serverRefusedTls, type Phase } from './failure-classify';
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
   * libpq's sslmode=prefer: a server that answers N to the SSLRequest is connected to again in
   * plain text (within the same check's budget). A TLS handshake that fails stays a failure (L6TLS).
   */
  readonly sslFallback?: boolean;
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

/** The Query message for CHECK_QUERY, serialized once and written as is for every check. */
const QUERY_MESSAGE = queryMessage(CHECK_QUERY);

/**
 * Role polls (failover watch). On PostgreSQL 14+ (the server reported in_hot_standby at startup)
 * an empty query: no parse, plan or snapshot, and the ParameterStatus that reports the end of
 * recovery comes before its ReadyForQuery. Older servers answer pg_is_in_recovery().
 */
const EMPTY_QUERY_MESSAGE = queryMessage('');
const ROLE_QUERY_MESSAGE = queryMessage('SELECT pg_is_in_recovery()');


export interface PostgresProbeHooks {
  /**
   * The kept check connection broke between checks (server crash, shutdown, network reset):
   * the checker should look again now instead of waiting out its interval.
   */
  onConnectionLost?(reason: string): void;
}

/** One check from start to result. */
interface Attempt {
  /** A poll only asks for the role, on the kept connection; a check may connect first. */
  readonly kind: 'check' | 'poll';
  readonly startedAt: number;
  readonly signal: AbortSignal;
  readonly resolve: (result: ProbeResult) => void;
  phase: Phase;
  /** Where the time goes (connect, tls, auth, query): a check's result carries it. */
  readonly timer: PhaseTimer;
  /** When durationMs was taken: the phases end at the same instant, so they never exceed it. */
  endedAt?: number;
  /** The pg Client while connecting and authenticating. */
  client?: Client;
}

/**
 * The check connection is kept open between checks and re-used while it works: on a loaded
 * server a new backend process (fork + authentication) can take most of a second, and a check
 * that times out because the server is *busy* would mark a healthy primary down. A failure
 * drops the connection, so the next check connects and authenticates afresh (and an L7AUTH is
 * seen then). A kept connection also notices a crash at once (onConnectionLost).
 */
export function postgresProbe(opts: PostgresProbeOptions, hooks: PostgresProbeHooks = {}): Probe {
  const check = new PostgresCheck(opts, hooks);
  return Object.assign((signal: AbortSignal) => check.run(signal, 'check'), {
    close: () => check.close(),
    poll: (signal: AbortSignal) => check.run(signal, 'poll'),
  });
}

/**
 * Per backend: the kept session, the check in flight (the checker runs one at a time) and one
 * deadline timer, refreshed for each check rather than re-created.
 */
class PostgresCheck {
  private readonly where: string;
  private session: CheckSession | undefined;
  private attempt: Attempt | undefined;
  private deadline: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly opts: PostgresProbeOptions,
    private readonly hooks: PostgresProbeHooks,
  ) {
    this.where = `${opts.host}:${opts.port}`;
  }

  run(signal: AbortSignal, kind: Attempt['kind']): Promise<ProbeResult> {
    return new Promise<ProbeResult>((resolve) => {
      const startedAt = performance.now();
      if (this.attempt !== undefined) {
        resolve({ ok: false, layer: 'L7QUERY', message: `a check of ${this.where} is already running`, durationMs: 0 });
        return;
      }
      const session = this.session !== undefined && this.session.usable ? this.session : undefined;
      if (kind === 'poll' && session === undefined) {
        resolve({ ok: false, layer: 'L7QUERY', message: `no kept check connection to ${this.where} to poll on`, durationMs: 0 });
        return;
      }
      const attempt: Attempt = { kind, startedAt, signal, resolve, phase: session ? 'querying' : 'connecting', timer: new PhaseTimer() };
      if (session) attempt.timer.enter('query');
      if (signal.aborted) {
        this.attempt = attempt;
        return this.timedOut(attempt, 'check aborted');
      }
      this.attempt = attempt;
      this.armDeadline();
      signal.addEventListener('abort', this.onAbort);
      if (kind === 'poll') session!.send(session!.hotStandby === undefined ? ROLE_QUERY_MESSAGE : EMPTY_QUERY_MESSAGE);
      else if (session) session.send();
      else this.connect(attempt);
    });
  }

  close(): void {
    this.closed = true;
    if (this.deadline !== undefined) clearTimeout(this.deadline);
    this.deadline = undefined;
    const attempt = this.attempt;
    if (attempt !== undefined) this.timedOut(attempt, 'check aborted');
    this.session?.close(true);
    this.session = undefined;
  }

  private armDeadline(): void {
    if (this.deadline === undefined) {
      this.deadline = setTimeout(this.onDeadline, this.opts.timeoutMs);
      this.deadline.unref();
    } else {
      this.deadline.refresh();
    }
  }

  /** The timer outlives the check it was armed for; firing with no check in flight is a no-op. */
  private readonly onDeadline = (): void => {
    const attempt = this.attempt;
    if (attempt !== undefined) this.timedOut(attempt, `check timed out after ${this.opts.timeoutMs} ms`);
  };

  private readonly onAbort = (): void => {
    const attempt = this.attempt;
    if (attempt !== undefined) this.timedOut(attempt, 'check aborted');
  };

  private connect(attempt: Attempt, ssl = this.opts.ssl ?? false): void {
    const opts = this.opts;
    attempt.timer.enter('connect');
    const client = new Client({
      host: opts.host,
      port: opts.port,
      user: opts.user,
      // '' rather than undefined: pg would otherwise consult PGPASSWORD and ~/.pgpass.
      password: opts.password ?? '',
      database: opts.database,
      ssl,
      application_name: 'pgwarden-check',
      connectionTimeoutMillis: opts.timeoutMs,
      statement_timeout: opts.timeoutMs,
    });
    attempt.client = client;
    // Without a listener an 'error' event (a reset after we settled) would crash the process.
    client.on('error', () => {});
    // PostgreSQL 14+ reports in_hot_standby at startup; the session then polls with empty queries.
    let hotStandby: boolean | undefined;
    client.connection.on('parameterStatus', (msg: { parameterName?: string; parameterValue?: string }) => {
      if (msg.parameterName === 'in_hot_standby') hotStandby = msg.parameterValue === 'on';
    });
    // Still the TCP socket here (a TLS upgrade wraps it later); the options live on its descriptor.
    const raw = client.connection.stream as net.Socket;
    const current = (): boolean => this.attempt === attempt;
    client.connection.once('connect', () => {
      if (attempt.phase === 'connecting') attempt.phase = 'authenticating';
      // With TLS, pg sends the SSLRequest now; the handshake follows the server's 'S'.
      if (current()) attempt.timer.enter(ssl === false ? 'auth' : 'tls');
      if (raw instanceof net.Socket) applyKeepalive(raw, checkKeepalive(opts.userTimeoutMs));
    });
    // pg emits sslconnect once it has wrapped the socket, before the handshake: its end is the TLSSocket's secureConnect.
    client.connection.once('sslconnect', () => {
      (client.connection.stream as TLSSocket).once('secureConnect', () => current() && attempt.timer.enter('auth'));
    });
    client.connect().then(
      () => {
        if (this.attempt !== attempt) return; // timed out or aborted meanwhile: already torn down
        attempt.client = undefined;
        attempt.phase = 'querying';
        attempt.timer.enter('query');
        const session = new CheckSession(client, raw, QUERY_MESSAGE, {
          onReply: (outcome) => this.onReply(session, outcome),
          onLost: (reason) => this.onLost(session, reason),
        }, hotStandby);
        this.session = session;
        session.send();
      },
      (err: unknown) => {
        if (this.attempt !== attempt) return;
        if (ssl !== false && opts.sslFallback === true && serverRefusedTls(err)) {
          dropClient(client);
          attempt.phase = 'connecting';
          return this.connect(attempt, false);
        }
        const failure = classify(err, attempt.phase);
        this.fail(attempt, failure.layer, failure.message.includes(this.where) ? failure.message : `${this.where}: ${failure.message}`);
      },
    );
  }

  private onReply(session: CheckSession, outcome: RoundTrip): void {
    const attempt = this.attempt;
    if (attempt === undefined || this.session !== session) return;
    if (attempt.kind === 'poll' && (outcome.kind === 'row' || outcome.kind === 'no-row')) {
      // pg_is_in_recovery() in a row, or (empty query) the in_hot_standby the server reported.
      const standby = outcome.kind === 'row' ? (outcome.values[0] === 't' ? true : outcome.values[0] === 'f' ? false : undefined) : session.hotStandby;
      if (standby === undefined) return this.fail(attempt, 'L7QUERY', `role poll of ${this.where} got no answer`);
      return this.settle(attempt, { ok: true, role: standby ? 'replica' : 'primary', durationMs: this.elapsed(attempt) });
    }
    switch (outcome.kind) {
      case 'row':
        return this.succeed(attempt, outcome.values);
      case 'no-row':
        return this.fail(attempt, 'L7QUERY', `check query returned no row from ${this.where}`);
      case 'server-error':
      case 'broken': {
        const failure = classify(outcome.error, 'querying');
        return this.fail(attempt, failure.layer, failure.message.includes(this.where) ? failure.message : `${this.where}: ${failure.message}`);
      }
    }
  }

  private onLost(session: CheckSession, reason: string): void {
    if (this.session !== session) return;
    this.session = undefined;
    if (!this.closed) this.hooks.onConnectionLost?.(redact(reason, this.opts.password));
  }

  private succeed(attempt: Attempt, values: readonly (string | null)[]): void {
    let result: ProbeResult;
    try {
      result = checkRowToResult(values, this.elapsed(attempt));
    } catch (err) {
      return this.fail(attempt, 'L7QUERY', `unexpected check result from ${this.where}: ${String(err)}`);
    }
    this.settle(attempt, result);
  }

  private timedOut(attempt: Attempt, what: string): void {
    this.fail(attempt, attempt.phase === 'connecting' ? 'L4TOUT' : 'L7TOUT', `${what} while ${attempt.phase} to ${this.where}`);
  }

  private fail(attempt: Attempt, layer: FailureLayer, message: string): void {
    this.settle(attempt, { ok: false, layer, message: redact(message, this.opts.password), durationMs: this.elapsed(attempt) });
  }

  /** Ends the check once; a failure drops the connection, a success keeps it (unless closed). */
  private settle(attempt: Attempt, result: ProbeResult): void {
    if (this.attempt !== attempt) return;
    this.attempt = undefined;
    attempt.signal.removeEventListener('abort', this.onAbort);
    if (!result.ok) {
      if (attempt.client !== undefined) dropClient(attempt.client);
      attempt.client = undefined;
      this.session?.close(false);
      this.session = undefined;
    } else if (this.closed) {
      this.session?.close(true);
      this.session = undefined;
    }
    attempt.resolve(attempt.kind === 'check' ? { ...result, phases: attempt.timer.finish(attempt.endedAt) } : result);
  }

  private elapsed(attempt: Attempt): number {
    attempt.endedAt = performance.now();
    return Math.round(attempt.endedAt - attempt.startedAt);
  }
}

/** A client that has not finished connecting: tear it down now. */
function dropClient(client: Client): void {
  client.end().catch(() => {});
  client.connection.stream.destroy();
}

/** The failure message must never carry the password, whatever a library put into it. */
function redact(message: string, password: string | undefined): string {
  return password ? message.split(password).join('********') : message;
}
