// auth.mode proxy, the two steps a session adds to its startup (DESIGN.md, "A session's life"):
//
// authenticating — after the StartupMessage: auth.query says what the server stores for the user;
//   pgwarden runs the exchange with the client itself (survive/client-auth.ts) and keeps the
//   LoginSecret. A role without a password (or one pgwarden cannot check) stays end to end: the
//   session goes on as under passthrough and the server decides.
// logging-in — once connected to a server: pgwarden logs in as the user (survive/server-login.ts);
//   the client then gets the server's ParameterStatus, pgwarden's own BackendKeyData (mapped to
//   the server's key in the cancel registry) and ReadyForQuery.
//
// Both own their listeners and timers and return their disposer, which the session keeps as the
// phase's exitPhase; after it has run, no callback fires.
import { randomInt } from 'node:crypto';
import type { Clock } from '../clock';
import type { RelayEnd } from '../net/relay-socket';
import { ClientAuthExchange, AUTHENTICATION_OK, type AuthResult } from '../survive/client-auth';
import type { LoginResult, LoginSecret, StartupParams } from '../survive/contracts';
import { serverLogin, ServerLoginError } from '../survive/server-login';
import type { Lookup } from './auth-lookup';
import type { CancelRegistry } from './cancel-registry';
import { cancelKey } from '../protocol/cancel';
import { taggedProcessId } from './cancel-tag';

/** PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH: the longest authentication message a client may send. */
const MAX_AUTH_MESSAGE = 65535;

export interface ClientAuthEvents {
  /** The client is authenticated (AuthenticationOk sent); `leftover`: what it sent after its last message. */
  passed(secret: LoginSecret, leftover: Buffer): void;
  /** Refused: 28P01 (wrong password, unknown user) or 08P01 (a malformed message). */
  refused(result: Extract<AuthResult, { ok: false }>): void;
}

/**
 * Runs the exchange over the client socket: `pending` are bytes the client sent after its
 * StartupMessage. Messages are framed here (Byte1 type, Int32 length) and bounded. The time
 * limit is the session's (client_login_timeout over the whole authenticating phase).
 */
export function authenticateClient(client: RelayEnd, exchange: ClientAuthExchange, pending: Buffer, events: ClientAuthEvents): () => void {
  let buffered = pending;
  let over = false;
  const stop = () => {
    over = true;
    client.off('data', onData);
  };
  const consume = () => {
    while (!over && buffered.length >= 5) {
      const length = buffered.readInt32BE(1);
      if (length < 4 || length > MAX_AUTH_MESSAGE) {
        stop();
        return events.refused({ ok: false, sqlstate: '08P01', message: `invalid message length ${length} in authentication` });
      }
      if (buffered.length < 1 + length) return;
      const type = buffered[0]!;
      const body = buffered.subarray(5, 1 + length);
      buffered = buffered.subarray(1 + length);
      const step = exchange.receive(type, body);
      if (step.send) client.write(step.send);
      if (!step.result) continue;
      stop();
      if (!step.result.ok) return events.refused(step.result);
      client.write(AUTHENTICATION_OK);
      return events.passed(step.result.secret, Buffer.from(buffered));
    }
    if (!over && buffered.length > MAX_AUTH_MESSAGE + 5) {
      stop();
      events.refused({ ok: false, sqlstate: '08P01', message: 'authentication message too long' });
    }
  };
  function onData(chunk: Buffer): void {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    consume();
  }
  client.on('data', onData);
  client.write(exchange.start());
  consume();
  return stop;
}

/** What to do after auth.query answered. */
export type AuthPlan = { readonly kind: 'exchange'; readonly exchange: ClientAuthExchange } | { readonly kind: 'passthrough'; readonly why: string };

export function planFor(user: string, lookup: Lookup, mockKey: Buffer): AuthPlan {
  if (lookup.kind === 'passthrough') return lookup;
  return { kind: 'exchange', exchange: new ClientAuthExchange(user, lookup, mockKey) };
}

export interface ServerLoginEvents {
  loggedIn(result: LoginResult): void;
  /** `closedBy`: pgwarden gave the login up (abandon) or it timed out; else the server's or the socket's error. */
  failed(err: ServerLoginError, closedBy?: 'timeout' | string): void;
}

export interface LoginHandle {
  /** pgwarden closes this server (down, maint …): the login fails with `closedBy` (the session redispatches). */
  abandon(reason: string): void;
  dispose(): void;
}

/** Logs in to `socket` within `timeoutMs` (proxy.startup_timeout). */
export function logInToServer(socket: RelayEnd, params: StartupParams, secret: LoginSecret, clock: Clock, timeoutMs: number, events: ServerLoginEvents): LoginHandle {
  let over = false;
  let closedBy: string | undefined;
  const give = (reason: string) => {
    if (over || closedBy !== undefined) return;
    closedBy = reason;
    socket.destroy();
  };
  const timer = clock.setTimeout(() => give('timeout'), timeoutMs);
  serverLogin(socket, params, secret).then(
    (result) => {
      if (over) return;
      over = true;
      timer.clear();
      events.loggedIn(result);
    },
    (err: unknown) => {
      if (over) return;
      over = true;
      timer.clear();
      const e = err instanceof ServerLoginError ? err : new ServerLoginError('08006', (err as Error).message, true, false);
      events.failed(e, closedBy);
    },
  );
  return {
    abandon: give,
    dispose: () => {
      over = true;
      timer.clear();
    },
  };
}

/**
 * The messages that end the client's startup after pgwarden's login: the server's
 * ParameterStatus, pgwarden's own BackendKeyData, ReadyForQuery 'I' ("Message Flow / Start-up").
 */
export function startupTail(parameters: ReadonlyMap<string, string>, processId: number, secretKey: number): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of parameters) {
    const body = Buffer.from(`${name}\0${value}\0`, 'utf8');
    const m = Buffer.allocUnsafe(5 + body.length);
    m[0] = 0x53; // 'S'
    m.writeInt32BE(4 + body.length, 1);
    body.copy(m, 5);
    parts.push(m);
  }
  const k = Buffer.allocUnsafe(13);
  k[0] = 0x4b; // 'K'
  k.writeInt32BE(12, 1);
  k.writeInt32BE(processId, 5);
  k.writeInt32BE(secretKey, 9);
  parts.push(k, Buffer.from([0x5a, 0, 0, 0, 5, 0x49])); // 'Z' idle
  return Buffer.concat(parts);
}

/**
 * A cancel key pgwarden issues: a positive process id (some drivers expect one) and a random
 * secret, not in use. With coordination the process id carries this member's `tag`
 * (cancel-tag.ts), so another instance can send a CancelRequest for it here.
 */
export function issueKey(cancels: CancelRegistry, tag?: number): { processId: number; secretKey: number } {
  for (;;) {
    const processId = tag === undefined ? randomInt(1, 0x7fffffff) : taggedProcessId(tag);
    const secretKey = randomInt(-0x80000000, 0x7fffffff);
    if (!cancels.get(cancelKey(processId, secretKey))) return { processId, secretKey };
  }
}
