// Moves one idle session to a new server of its route (sessions.survive, issue 19 point 2):
// route through the listener's router (waiting in its queue while there is no server, e.g. no
// primary yet, up to failover.queue_timeout), connect (with tls.server like any session),
// log in as the session's user with the ServerLogin its LoginSecret calls for, rebuild the
// session's state from the tracker's replay steps, and say which ParameterStatus values the
// client must be told. Nothing here touches the client: the session (movable-session.ts)
// pauses it before and resumes it after.
//
// A server that refuses the connection, or answers the login with 57P03 (starting up, shutting
// down), is skipped like a session's redispatch: the next candidate, or the queue. Anything else
// the new server refuses (a password, a replayed SET) fails the move: the session is then closed
// as it would have been without survive.
import type { Clock } from '../clock';
import type { BackendView } from '../routing/topology';
import type { ExcludeFn } from '../routing/router';
import type { RelayEnd } from '../net/relay-socket';
import { SessionMoveError, SqlState } from '../errors';
import { startAttempt, type AttemptOutcome } from './backend-attempt';
import { BackendConnectError } from './backend-connect';
import type { ServerTlsOptions } from './listener-context';
import { RecentFailures } from './recent-failures';
import type { LoginResult, LoginSecret, ServerLogin, SessionStateTracker, StartupParams } from '../survive/contracts';
import { replayState } from '../survive/state-replay';

export interface MoveDeps {
  readonly clock: Clock;
  /** The listener's router (its queue is the one new sessions wait in). */
  acquire(exclude: ExcludeFn, deadline: number, signal: AbortSignal): Promise<BackendView>;
  /** Give back the startup slot the router took with a backend. */
  releaseSlot(backend: string): void;
  serverTlsOptions(host: string): ServerTlsOptions | undefined;
  /** The login for a secret's kind; undefined: sessions with such a secret cannot move. */
  login(kind: LoginSecret['kind']): ServerLogin | undefined;
  /** A connect to a candidate failed: its checker should look now. */
  onConnectFailure(backend: string, err: BackendConnectError): void;
  readonly queueTimeoutMs: number;
  readonly connectTimeoutMs: number;
  /** Bounds connect + login + replay on one server. */
  readonly startupTimeoutMs: number;
  readonly userTimeoutMs: number;
  /** How long a server that refused stays skipped (as RecentFailures for a session). */
  readonly failureWindowMs: number;
}

export interface MoveRequest {
  readonly params: StartupParams;
  readonly secret: LoginSecret;
  readonly tracker: SessionStateTracker;
}

export interface MoveResult {
  readonly view: BackendView;
  readonly socket: RelayEnd;
  readonly login: LoginResult;
  /** ParameterStatus values of the new server that differ from what the client was told. */
  readonly changed: ReadonlyArray<readonly [name: string, value: string]>;
}

export interface Move {
  readonly done: Promise<MoveResult>;
  /** The client went away or pgwarden is stopping: free everything (done then rejects). Idempotent. */
  abort(): void;
}

export function moveSession(req: MoveRequest, deps: MoveDeps): Move {
  const controller = new AbortController();
  let socket: RelayEnd | undefined;
  let attempt: { dispose(): void } | undefined;
  const abort = () => {
    if (controller.signal.aborted) return;
    controller.abort();
    attempt?.dispose();
    socket?.destroy();
  };
  const done = run(req, deps, controller.signal, {
    attempt: (a) => (attempt = a),
    socket: (s) => (socket = s),
  });
  // Nobody may be listening once the session has gone: never an unhandled rejection.
  done.catch(() => undefined);
  return { done, abort };
}

interface Holders {
  attempt(a: { dispose(): void } | undefined): void;
  socket(s: RelayEnd | undefined): void;
}

async function run(req: MoveRequest, deps: MoveDeps, signal: AbortSignal, hold: Holders): Promise<MoveResult> {
  const login = deps.login(req.secret.kind);
  if (!login) throw new SessionMoveError(`no login for a ${req.secret.kind} secret`);
  const deadline = deps.clock.now() + deps.queueTimeoutMs;
  const failures = new RecentFailures(deps.failureWindowMs, deps.clock);
  for (;;) {
    const view = await deps.acquire(() => failures.active(), deadline, signal);
    let socket: RelayEnd | undefined;
    try {
      if (signal.aborted) throw new SessionMoveError('the move was abandoned');
      socket = await connect(view, deps, hold);
      hold.socket(socket);
      if (signal.aborted) throw new SessionMoveError('the move was abandoned');
      const result = await bounded(socket, deps, logInAndReplay(socket, login, req));
      if (signal.aborted) throw new SessionMoveError('the move was abandoned');
      hold.socket(undefined);
      return { view, socket, ...result };
    } catch (e) {
      socket?.destroy();
      hold.socket(undefined);
      const err = e as Error;
      const retry = !signal.aborted && (err instanceof BackendConnectError || (err instanceof SessionMoveError && err.sqlstate === SqlState.CANNOT_CONNECT_NOW));
      if (!retry) throw err;
      failures.add(view.name);
      deps.onConnectFailure(view.name, err instanceof BackendConnectError ? err : new BackendConnectError('L7QUERY', `${view.name} refused a moved session: ${err.message}`));
    } finally {
      deps.releaseSlot(view.name);
    }
  }
}

/** One connection to `view`, through startAttempt (tls.server, connect_timeout) with nothing to send yet. */
function connect(view: BackendView, deps: MoveDeps, hold: Holders): Promise<RelayEnd> {
  return new Promise((resolve, reject) => {
    const attempt = startAttempt(
      { view, firstBytes: Buffer.alloc(0), awaitAnswer: false, serverTls: deps.serverTlsOptions(view.config.host) },
      { clock: deps.clock, connectTimeoutMs: deps.connectTimeoutMs, startupTimeoutMs: deps.startupTimeoutMs, userTimeoutMs: deps.userTimeoutMs },
      {
        connected: () => undefined,
        slowAnswer: () => undefined,
        settled: (outcome: AttemptOutcome) => {
          hold.attempt(undefined);
          if (outcome.ok) return resolve(outcome.socket);
          if ('error' in outcome) return reject(outcome.error);
          if ('local' in outcome) return reject(outcome.local);
          reject(new BackendConnectError('L4CON', `${view.name} was closed by pgwarden (${outcome.closedBy}) during the move`));
        },
      },
    );
    hold.attempt(attempt);
  });
}

async function logInAndReplay(socket: RelayEnd, login: ServerLogin, req: MoveRequest): Promise<Omit<MoveResult, 'view' | 'socket'>> {
  const result = await login(socket, req.params, req.secret);
  const reported = await replayState(socket, req.tracker.replay());
  const server = new Map([...result.parameters, ...reported]);
  const told = req.tracker.parameters();
  const changed = [...server].filter(([name, value]) => told.get(name) !== value);
  return { login: result, changed };
}

/** startup_timeout for login and replay on one server: past it the socket is destroyed (which fails them). */
async function bounded<T>(socket: RelayEnd, deps: MoveDeps, work: Promise<T>): Promise<T> {
  let timedOut = false;
  const timer = deps.clock.setTimeout(() => {
    timedOut = true;
    socket.destroy();
  }, deps.startupTimeoutMs);
  try {
    return await work;
  } catch (e) {
    if (timedOut) throw new BackendConnectError('L7TOUT', `the new server did not finish the login and state replay within ${deps.startupTimeoutMs} ms`);
    throw e;
  } finally {
    timer.clear();
  }
}
