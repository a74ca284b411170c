// A Listener and its Sessions wired to hand-made collaborators, in front of scripted TCP peers
// (fake servers that answer, stall, reset, half-close or speak something else), so every fault
// path of a session can be driven on purpose. Real PostgreSQL is covered by the integration
// tests; these peers stand in only for behaviour a real server will not produce on demand.
import net from 'node:net';
import { once } from 'node:events';
import pino from 'pino';
import type { Test } from 'tap';
import { parseConfig } from '../../src/config/load';
import { Topology, type CheckerSnapshot } from '../../src/routing/topology';
import { Router } from '../../src/routing/router';
import { StartupSlots } from '../../src/routing/startup-slots';
import { CancelRegistry, sendCancel } from '../../src/proxy/cancel-registry';
import { FanoutBudget, type CancelOutcome } from '../../src/proxy/cancel-forwarder';
import { Listener } from '../../src/proxy/listener';
import type { ListenerContext, SessionEnd } from '../../src/proxy/listener-context';
import type { BackendConnectError } from '../../src/proxy/backend-connect';
import type { RoutingError } from '../../src/errors';
import { realClock } from '../../src/clock';
import type { Clock } from '../../src/clock';

/** What the rig saw, in order. */
export interface RigRecord {
  connectFailures: { backend: string; layer: string; message: string }[];
  rejected: RoutingError[];
  clientErrors: { sqlstate: string; message: string }[];
  starts: string[];
  ends: SessionEnd[];
  cancels: CancelOutcome[];
  internalErrors: Error[];
  redispatches: string[];
}

export interface Rig {
  listener: Listener;
  topology: Topology;
  ctx: ListenerContext;
  port: number;
  record: RigRecord;
  /** Resolves when `n` sessions have ended (with a deadline). */
  ended(n: number): Promise<SessionEnd[]>;
}

export interface RigOptions {
  /** Backend ports (the scripted peers): s1 the primary, the rest replicas, all up. */
  backends: number[];
  /** Settings under `proxy:` (YAML values), over the rig's short timeouts. */
  proxy?: Record<string, string>;
  queueTimeout?: string;
  clock?: Clock;
  cancelRate?: number;
  /** auth.mode proxy with this stand-in for auth.query (absent: passthrough). */
  lookupSecret?: ListenerContext['lookupSecret'];
}

const primaryUp: CheckerSnapshot = { state: 'up', transitional: false, lastResult: { ok: true, role: 'primary', currentLsn: 1n, durationMs: 1 } };
const replicaUp: CheckerSnapshot = { state: 'up', transitional: false, lastResult: { ok: true, role: 'replica', replayLsn: 1n, receiveLsn: 1n, replayLagSeconds: 0, durationMs: 1 } };

export async function startRig(t: Test, opts: RigOptions): Promise<Rig> {
  const proxy = { connect_timeout: '200ms', startup_timeout: '400ms', client_login_timeout: '2s', ...opts.proxy };
  const config = parseConfig(`
listeners:
  - { name: rw, bind: "127.0.0.1:1", route: any }
backends:
${opts.backends.map((p, i) => `  - { name: s${i + 1}, host: 127.0.0.1, port: ${p}, role: ${i === 0 ? 'primary' : 'replica'} }`).join('\n')}
health: { check: tcp }
failover: { queue_timeout: ${opts.queueTimeout ?? '1s'} }
proxy:
${Object.entries(proxy).map(([k, v]) => `  ${k}: ${v}`).join('\n')}
`);
  const clock = opts.clock ?? realClock;
  const topology = new Topology(config.backends, config.health);
  // The first backend is the primary, the others replicas (route `any` takes them all).
  config.backends.forEach((b, i) => topology.update(b.name, i === 0 ? primaryUp : replicaUp));
  const l = { ...config.listeners[0], port: 0 }; // any free port
  const startups = new StartupSlots(() => config.proxy.maxConcurrentStartups);
  const router = new Router(l, topology, config.failover, undefined, undefined, realClock, startups);
  const record: RigRecord = { connectFailures: [], rejected: [], clientErrors: [], starts: [], ends: [], cancels: [], internalErrors: [], redispatches: [] };
  const waiters: (() => void)[] = [];
  const cancels = new CancelRegistry();
  const ctx: ListenerContext = {
    listener: l,
    router,
    startups,
    topology,
    cancels,
    tls: config.tls,
    // Plain text both ways: the TLS paths run against real servers (tls-terminate.test.ts).
    clientTlsOptions: () => undefined,
    clientCertificateError: () => undefined,
    serverTlsOptions: () => undefined,
    proxy: config.proxy,
    auth: opts.lookupSecret ? { ...config.auth, mode: 'proxy' } : config.auth,
    // auth.mode proxy against real servers: proxy-auth.test.ts; here a stand-in for auth.query.
    lookupSecret: opts.lookupSecret ?? (() => Promise.reject(new Error('no auth.query in the session rig'))),
    authMockKey: Buffer.alloc(32),
    failover: config.failover,
    health: config.health,
    clock,
    log: { debug: () => undefined, isLevelEnabled: () => true },
    fanout: new FanoutBudget(opts.cancelRate ?? 50, opts.cancelRate ?? 50, clock),
    onConnectFailure: (backend: string, err: BackendConnectError) => record.connectFailures.push({ backend, layer: err.layer, message: err.message }),
    onRedispatch: (backend) => record.redispatches.push(backend),
    onSlowAnswer: () => undefined,
    onRejected: (err) => record.rejected.push(err),
    onClientError: (sqlstate, message) => record.clientErrors.push({ sqlstate, message }),
    onSessionStart: (backend) => record.starts.push(backend),
    onSessionEnd: (end) => {
      record.ends.push(end);
      for (const w of waiters.splice(0)) w();
    },
    onClosedByProxy: () => undefined,
    onCancel: (outcome) => record.cancels.push(outcome),
    onInternalError: (err) => record.internalErrors.push(err),
    onOutOfDescriptors: () => undefined,
    survive: () => undefined,
    onMoved: () => undefined,
    onNotMoved: () => undefined,
    cancelTargets: () => topology.backends().map((v) => ({ backend: v.name, host: v.config.host, port: v.config.port })),
    sendCancel: (host, port, packet) => sendCancel(host, port, packet, 1000),
  };
  const listener = new Listener(ctx, pino({ level: 'silent' }));
  await listener.listen();
  t.teardown(async () => {
    await listener.stopAccepting();
    for (const s of listener.sessions) s.close();
  });
  const ended = async (n: number) => {
    const deadline = Date.now() + 10_000;
    while (record.ends.length < n) {
      if (Date.now() > deadline) throw new Error(`waited 10 s for ${n} session ends, saw ${record.ends.length}: ${JSON.stringify(record.ends)}`);
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 100).unref();
      });
    }
    return record.ends;
  };
  return { listener, topology, ctx, port: listener.address().port, record, ended };
}

/** A fake server: `onConnection` scripts each accepted socket. Closed in teardown. */
export async function scriptedServer(t: Test, onConnection: (socket: net.Socket) => void, allowHalfOpen = false): Promise<{ port: number; connections: net.Socket[] }> {
  const connections: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen }, (s) => {
    connections.push(s);
    s.on('error', () => undefined);
    // Flowing, so a FIN is read (and 'close' follows) even when the script reads nothing.
    s.on('data', () => undefined);
    onConnection(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    for (const s of connections) s.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { port: (server.address() as net.AddressInfo).port, connections };
}

// ---- protocol bytes -----------------------------------------------------------------------

export function startupMessage(params: Record<string, string> = { user: 'alice', database: 'app' }): Buffer {
  const body = Buffer.concat([...Object.entries(params).flatMap(([k, v]) => [Buffer.from(`${k}\0`), Buffer.from(`${v}\0`)]), Buffer.from([0])]);
  const head = Buffer.alloc(8);
  head.writeInt32BE(8 + body.length, 0);
  head.writeInt32BE(196608, 4); // protocol 3.0
  return Buffer.concat([head, body]);
}

export function message(type: string, body: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}

export const authOk = (): Buffer => message('R', Buffer.from([0, 0, 0, 0]));
export const readyForQuery = (status = 'I'): Buffer => message('Z', Buffer.from(status, 'latin1'));
export function backendKeyData(pid: number, secret: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeInt32BE(pid, 0);
  b.writeInt32BE(secret, 4);
  return message('K', b);
}
/** Everything a trusting server sends after a StartupMessage. */
export const loginAnswer = (pid = 4242, secret = 77): Buffer => Buffer.concat([authOk(), backendKeyData(pid, secret), readyForQuery()]);
export const query = (sql: string): Buffer => message('Q', Buffer.from(`${sql}\0`));
export const terminate = (): Buffer => message('X');
export function cancelPacket(pid: number, secret: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeInt32BE(16, 0);
  b.writeInt32BE(80877102, 4);
  b.writeInt32BE(pid, 8);
  b.writeInt32BE(secret, 12);
  return b;
}

/** The fields of the first ErrorResponse in `bytes` (code letter → value), or undefined. */
export function firstError(bytes: Buffer): Record<string, string> | undefined {
  let pos = 0;
  while (pos + 5 <= bytes.length) {
    const type = String.fromCharCode(bytes[pos]);
    const len = bytes.readInt32BE(pos + 1);
    if (type === 'E') {
      const out: Record<string, string> = {};
      let p = pos + 5;
      while (p < pos + 1 + len && bytes[p] !== 0) {
        const end = bytes.indexOf(0, p + 1);
        out[String.fromCharCode(bytes[p])] = bytes.toString('utf8', p + 1, end);
        p = end + 1;
      }
      return out;
    }
    pos += 1 + len;
  }
  return undefined;
}

/** A client that connects, sends `bytes`, and collects everything until the connection closes. */
export async function exchange(port: number, bytes: Buffer | ((s: net.Socket) => void)): Promise<Buffer> {
  const s = net.connect(port, '127.0.0.1');
  const parts: Buffer[] = [];
  s.on('data', (c: Buffer) => parts.push(c));
  await once(s, 'connect');
  if (typeof bytes === 'function') bytes(s);
  else s.write(bytes);
  await new Promise<void>((resolve) => {
    s.on('close', () => resolve());
    s.on('error', () => undefined);
  });
  return Buffer.concat(parts);
}

/** Waits for `cond` with a deadline (10 s). */
export async function until(what: string, cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
