// The session mover against small scripted servers (a real socket each, the protocol written by
// hand): a server that answers 57P03 is skipped for the next candidate; a trusted login collects
// the server's parameters and key, the replay steps reach the server in order and their answers
// are absorbed, and only the parameters that differ from what the client was told come back; a
// server that asks for a password, or refuses a replayed step, fails the move; an abort while
// waiting for a server ends it.
import net from 'node:net';
import t from 'tap';
import type { Test } from 'tap';
import { realClock } from '../../src/clock';
import { SessionMoveError } from '../../src/errors';
import { errorResponse } from '../../src/protocol/error-response';
import { parameterStatusMessage } from '../../src/protocol/frontend-messages';
import { MessageReader } from '../../src/protocol/message-reader';
import type { BackendView } from '../../src/routing/topology';
import type { ReplayStep, SessionStateTracker } from '../../src/survive/contracts';
import { moveSession, type MoveDeps } from '../../src/proxy/session-mover';
import { trustLogin } from '../../src/survive/trust-login';
import { framed as msg } from '../helpers/framed';

const AUTH_OK = msg('R', Buffer.from([0, 0, 0, 0]));
const READY = msg('Z', 'I');

type Behaviour = 'trust' | 'starting-up' | 'password' | 'refuse-replay';

/** A scripted server; `seen` records the client messages after the startup (type + body text). */
async function scriptedServer(t: Test, behaviour: Behaviour): Promise<{ port: number; seen: string[]; startups: Record<string, string>[] }> {
  const seen: string[] = [];
  const startups: Record<string, string>[] = [];
  const server = net.createServer((s) => {
    let started = false;
    let pending = Buffer.alloc(0);
    const reader = new MessageReader();
    s.on('error', () => undefined);
    s.on('data', (chunk: Buffer) => {
      if (!started) {
        pending = Buffer.concat([pending, chunk]);
        if (pending.length < 4 || pending.length < pending.readInt32BE(0)) return;
        const parts = pending.subarray(8, pending.readInt32BE(0) - 1).toString('utf8').split('\0');
        startups.push(Object.fromEntries(parts.flatMap((p, i) => (i % 2 === 0 ? [[p, parts[i + 1]!]] : []))));
        started = true;
        if (behaviour === 'starting-up') return void s.end(errorResponse({ severity: 'FATAL', code: '57P03', message: 'the database system is starting up' }));
        if (behaviour === 'password') return void s.write(msg('R', Buffer.from([0, 0, 0, 10, ...Buffer.from('SCRAM-SHA-256\0\0')])));
        s.write(Buffer.concat([AUTH_OK, parameterStatusMessage('server_version', '17.0'), parameterStatusMessage('application_name', ''), msg('K', Buffer.from([0, 0, 0, 7, 0, 0, 0, 8])), READY]));
        return;
      }
      reader.feed(chunk, (type, buf, start, end) => {
        const body = buf.toString('utf8', start, end);
        seen.push(`${String.fromCharCode(type)} ${body.split('\0')[0]}${type === 0x50 ? ` ${body.split('\0')[1]}` : ''}`);
        if (type === 0x51) {
          if (behaviour === 'refuse-replay') return void s.write(Buffer.concat([errorResponse({ severity: 'ERROR', code: '42704', message: 'unrecognized configuration parameter' }), READY]));
          const extra = body.startsWith('SET application_name') ? parameterStatusMessage('application_name', 'app') : Buffer.alloc(0);
          s.write(Buffer.concat([msg('C', 'SET\0'), extra, READY]));
        } else if (type === 0x50) s.write(msg('1'));
        else if (type === 0x53) s.write(READY);
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { port: (server.address() as net.AddressInfo).port, seen, startups };
}

const view = (name: string, port: number) => ({ name, config: { name, host: '127.0.0.1', port } }) as unknown as BackendView;

function tracker(steps: ReplayStep[], told: Record<string, string>): SessionStateTracker {
  return { fromClient: () => undefined, fromServer: () => undefined, movable: () => ({ ok: true }), replay: () => steps, parameters: () => new Map(Object.entries(told)) };
}

function deps(views: BackendView[], released: string[]): MoveDeps {
  return {
    clock: realClock,
    acquire: (exclude, _deadline, signal) => {
      const v = views.find((x) => !exclude().has(x.name));
      if (v) return Promise.resolve(v);
      return new Promise((_r, reject) => signal.addEventListener('abort', () => reject(new Error('aborted in the queue'))));
    },
    releaseSlot: (b) => released.push(b),
    serverTlsOptions: () => undefined,
    login: (kind) => (kind === 'trust' ? trustLogin : undefined),
    onConnectFailure: () => undefined,
    queueTimeoutMs: 5_000,
    connectTimeoutMs: 2_000,
    startupTimeoutMs: 5_000,
    userTimeoutMs: 5_000,
    failureWindowMs: 60_000,
  };
}

const PARAMS = new Map([['user', 'alice'], ['database', 'app']]);
const STEPS: ReplayStep[] = [
  { kind: 'query', sql: "SET application_name = 'app'" },
  { kind: 'parse', name: 's1', query: 'select $1', paramTypes: [23] },
];

t.test('skips a server that is starting up, logs in to the next, replays, reports what differs', async (t) => {
  const starting = await scriptedServer(t, 'starting-up');
  const good = await scriptedServer(t, 'trust');
  const released: string[] = [];
  const move = moveSession({ params: PARAMS, secret: { kind: 'trust' }, tracker: tracker(STEPS, { server_version: '15.4', application_name: 'app' }) }, deps([view('a', starting.port), view('b', good.port)], released));
  const r = await move.done;
  t.teardown(() => r.socket.destroy());
  t.equal(r.view.name, 'b', 'the second candidate');
  t.same(good.startups, [{ user: 'alice', database: 'app' }], 'logged in with the startup parameters');
  t.same(good.seen, ["Q SET application_name = 'app'", 'P s1 select $1', 'S '], 'the steps in order: SET, then Parse + Sync');
  t.same(r.changed, [['server_version', '17.0']], 'only server_version differs (application_name was replayed)');
  t.same([r.login.processId, r.login.secretKey], [7, 8]);
  t.same(released, ['a', 'b'], 'each startup slot given back');
  t.equal(r.socket.listenerCount('data'), 0, 'no reader left on the socket');
});

t.test('a server that asks for a password fails the move', async (t) => {
  const s = await scriptedServer(t, 'password');
  const move = moveSession({ params: PARAMS, secret: { kind: 'trust' }, tracker: tracker([], {}) }, deps([view('a', s.port)], []));
  await t.rejects(move.done, SessionMoveError);
  await t.rejects(move.done, /asks for a password/);
});

t.test('a replayed step the server refuses fails the move, with its SQLSTATE', async (t) => {
  const s = await scriptedServer(t, 'refuse-replay');
  const move = moveSession({ params: PARAMS, secret: { kind: 'trust' }, tracker: tracker(STEPS, {}) }, deps([view('a', s.port)], []));
  const err = await move.done.catch((e: SessionMoveError) => e);
  t.type(err, SessionMoveError);
  t.equal((err as SessionMoveError).sqlstate, '42704');
  t.match((err as Error).message, /replaying "SET application_name = 'app'" failed/);
});

t.test('no login for the secret, or an abort while waiting in the queue, ends the move', async (t) => {
  const none = moveSession({ params: PARAMS, secret: { kind: 'md5', hash: 'md5x' }, tracker: tracker([], {}) }, deps([], []));
  await t.rejects(none.done, /no login for a md5 secret/);
  const waiting = moveSession({ params: PARAMS, secret: { kind: 'trust' }, tracker: tracker([], {}) }, deps([], []));
  waiting.abort();
  waiting.abort();
  await t.rejects(waiting.done, /aborted in the queue/);
});
