// Socket-level fuzzing: pgwarden in front of a real PostgreSQL takes many concurrent connections
// (bounded) that send generated first bytes — junk, truncated startups, lying length words,
// junk after a valid StartupMessage, SSLRequest followed by garbage, streams of negotiation
// requests, cancel requests with random keys — cut into random chunks with random pauses, some
// ending with a FIN and some falling silent. Meanwhile and afterwards a real node-postgres client
// must be served; every fuzz connection that cannot become a session must be answered with at
// most the negotiation bytes and one ErrorResponse, and closed (a silent one at
// client_login_timeout); no session and no internal error is left behind.
//
// FUZZ_CONNECTIONS (default 300) and FUZZ_SEED (printed) replay or scale a run. Waits have
// deadlines; nothing asserts how long anything took.
import net from 'node:net';
import t from 'tap';
import { startCluster } from '../helpers/cluster';
import { CHECK_USER, connect, startProxy, waitFor } from '../helpers/proxy';
import { fc, lyingLengthArb, split, cstringArb } from '../helpers/fuzz';

const LOGIN_TIMEOUT_MS = 1000;
/** Far beyond the login timeout: the machine may be busy; this is a deadline, not a measure. */
const CLOSE_DEADLINE_MS = LOGIN_TIMEOUT_MS + 30_000;
const CONNECTIONS = Number(process.env.FUZZ_CONNECTIONS ?? 300);
const CONCURRENCY = 100;
const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));

type Expect =
  /** pgwarden refuses or forwards a cancel: negotiation bytes, at most one ErrorResponse, a close. */
  | 'refused'
  /** A valid StartupMessage: the server answers (its Authentication or its ErrorResponse). */
  | 'served';

interface FuzzCase {
  kind: string;
  bytes: Buffer;
  cuts: number[];
  /** Pause before each chunk, ms. */
  pauses: number[];
  /** Send a FIN after the bytes (otherwise fall silent and wait). */
  fin: boolean;
  expect: Expect;
}

const int32s = (...n: number[]): Buffer => {
  const b = Buffer.alloc(4 * n.length);
  n.forEach((v, i) => b.writeInt32BE(v | 0, 4 * i));
  return b;
};
function untyped(code: number, body: Buffer, length = 8 + body.length): Buffer {
  return Buffer.concat([int32s(length, code), body]);
}
const startup = (params: [string, string][]) => untyped(3 << 16, Buffer.from(params.map(([k, v]) => `${k}\0${v}\0`).join('') + '\0'));
const validStartup = startup([['user', 'postgres'], ['database', 'postgres'], ['application_name', 'fuzz']]);
const SSL = untyped(80877103, Buffer.alloc(0));
const GSS = untyped(80877104, Buffer.alloc(0));

/**
 * Junk that is not a TLS record: a first byte 0x16 would be relayed to the server as direct TLS
 * (tls.mode passthrough), where the server's authentication_timeout, not pgwarden, governs it.
 */
const junk = (max: number) => fc.uint8Array({ minLength: 1, maxLength: max }).map((a) => {
  const b = Buffer.from(a);
  if (b[0] === 0x16) b[0] = 0x17;
  return b;
});

const caseArb: fc.Arbitrary<Omit<FuzzCase, 'cuts' | 'pauses' | 'fin'>> = fc.oneof(
  junk(64).map((bytes) => ({ kind: 'junk', bytes, expect: 'refused' as const })),
  // 1 to length - 1 bytes: never the whole packet.
  fc.nat(validStartup.length - 2).map((n) => ({ kind: 'truncated startup', bytes: validStartup.subarray(0, n + 1), expect: 'refused' as const })),
  fc.tuple(lyingLengthArb([8, 16, 10_000]), fc.constantFrom(3 << 16, 80877103, 80877102, 80877104), junk(40)).map(([len, code, body]) => ({
    kind: 'lying length',
    bytes: untyped(code, body, len),
    expect: 'refused' as const,
  })),
  fc.constantFrom(10_001, 100_000, 0x7fffffff).map((len) => ({ kind: 'oversized length', bytes: untyped(3 << 16, Buffer.from('user\0postgres\0\0'), len), expect: 'refused' as const })),
  fc.tuple(fc.array(fc.tuple(fc.constantFrom('user', 'database', 'options', 'x'), cstringArb(12)), { maxLength: 3 })).map(([params]) => ({
    kind: 'startup without a usable user',
    bytes: startup(params.filter(([k]) => k !== 'user')),
    expect: 'refused' as const,
  })),
  junk(200).map((j) => ({ kind: 'junk after a valid StartupMessage', bytes: Buffer.concat([validStartup, j]), expect: 'served' as const })),
  // More than a startup packet's worth before the server answered: refused (08P01), or served
  // when the server was quicker than the rest of the bytes.
  fc.integer({ min: 10_001, max: 40_000 }).map((n) => ({ kind: 'too much after a valid StartupMessage', bytes: Buffer.concat([validStartup, Buffer.alloc(n, 0x51)]), expect: 'served' as const })),
  junk(64).map((j) => ({ kind: 'SSLRequest then garbage', bytes: Buffer.concat([SSL, j]), expect: 'refused' as const })),
  fc.tuple(fc.array(fc.constantFrom(SSL, GSS), { minLength: 2, maxLength: 2000 }), fc.option(junk(16))).map(([reqs, j]) => ({
    kind: 'negotiation flood',
    bytes: Buffer.concat([...reqs, j ?? Buffer.alloc(0)]),
    expect: 'refused' as const,
  })),
  fc.tuple(fc.integer(), fc.integer()).map(([pid, key]) => ({ kind: 'cancel with a random key', bytes: untyped(80877102, int32s(pid, key)), expect: 'refused' as const })),
);

const fullCaseArb: fc.Arbitrary<FuzzCase> = fc
  .tuple(caseArb, fc.array(fc.nat(1 << 16), { maxLength: 4 }), fc.array(fc.nat(20), { maxLength: 5 }), fc.boolean())
  .map(([c, cuts, pauses, fin]) => ({ ...c, cuts, pauses, fin }));

interface Outcome {
  answer: Buffer;
  closedByProxy: boolean;
}

/** Plays one case; resolves when the proxy closed the connection or (served cases) the server answered. */
function play(port: number, c: FuzzCase): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    const s = net.connect({ host: '127.0.0.1', port });
    let done = false;
    const finish = (closedByProxy: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      s.destroy();
      resolve({ answer: Buffer.concat(parts), closedByProxy });
    };
    const deadline = setTimeout(() => {
      if (done) return;
      done = true;
      s.destroy();
      reject(new Error(`${c.kind}: not closed within ${CLOSE_DEADLINE_MS} ms; sent ${c.bytes.subarray(0, 32).toString('hex')} (${c.bytes.length} bytes, fin ${c.fin}), got ${Buffer.concat(parts).subarray(0, 32).toString('hex')}`));
    }, CLOSE_DEADLINE_MS);
    s.on('error', () => undefined);
    s.on('data', (b: Buffer) => {
      parts.push(b);
      // A served case is done once the server has answered the startup (Authentication or error).
      if (c.expect === 'served' && servedAnswer(Buffer.concat(parts))) finish(false);
    });
    s.on('close', () => finish(true));
    s.once('connect', async () => {
      const chunks = split(c.bytes, c.cuts);
      for (let i = 0; i < chunks.length && !s.destroyed; i++) {
        const pause = c.pauses[i] ?? 0;
        if (pause > 0) await new Promise((r) => setTimeout(r, pause));
        if (!s.destroyed) s.write(chunks[i]);
      }
      if (c.fin && !s.destroyed) s.end();
    });
  });
}

/** The server's answer to a StartupMessage has begun: Authentication ('R') or ErrorResponse ('E'). */
function servedAnswer(b: Buffer): boolean {
  return b.length > 0 && (b[0] === 0x52 || b[0] === 0x45);
}

/** Negotiation answers ('N', at most one per request kind), then nothing or one whole ErrorResponse. */
function checkRefusal(c: FuzzCase, o: Outcome): string | undefined {
  if (!o.closedByProxy) return 'not closed by the proxy';
  let i = 0;
  while (i < o.answer.length && i < 2 && o.answer[i] === 0x4e) i++;
  const rest = o.answer.subarray(i);
  if (rest.length === 0) return undefined;
  if (rest[0] !== 0x45 || rest.length < 5) return `answer ${o.answer.subarray(0, 16).toString('hex')} is not negotiation bytes and an ErrorResponse`;
  const len = rest.readInt32BE(1);
  if (1 + len !== rest.length) return `ErrorResponse of ${len} bytes followed by ${rest.length - 1 - len} more`;
  if (!/C[0-9A-Z]{5}\0/.test(rest.toString('latin1'))) return `ErrorResponse to a ${c.kind} without a SQLSTATE`;
  return undefined;
}

t.test(`socket fuzz: ${CONNECTIONS} generated connections, ${CONCURRENCY} at a time (FUZZ_SEED=${SEED})`, async (t) => {
  const cluster = await startCluster(t, { replicas: 0, checkUser: CHECK_USER });
  const p = await startProxy(t, cluster, {
    listeners: (rw) => `  - { name: rw, bind: "127.0.0.1:${rw}", route: primary }`,
    extra: `proxy:\n  client_login_timeout: ${LOGIN_TIMEOUT_MS}ms`,
  });
  await waitFor('pg1 is the primary', () => p.app.topology.primary()?.name === 'pg1', 30_000);
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const heapBefore = process.memoryUsage().heapUsed;

  // A real client, served all along: a new connection and a query, over and over.
  let fuzzing = true;
  let served = 0;
  const clientErrors: string[] = [];
  const realClient = (async () => {
    while (fuzzing) {
      try {
        const c = await connect(p.rwPort, { application_name: 'real' });
        const r = await c.query('select 1 as one');
        if (r.rows[0].one === 1) served++;
        await c.end();
      } catch (err) {
        clientErrors.push(String(err));
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();

  const cases = fc.sample(fullCaseArb, { numRuns: CONNECTIONS, seed: SEED });
  const failures: string[] = [];
  const kinds = new Map<string, number>();
  let next = 0;
  const worker = async () => {
    while (next < cases.length) {
      const c = cases[next++]!;
      kinds.set(c.kind, (kinds.get(c.kind) ?? 0) + 1);
      try {
        const o = await play(p.rwPort, c);
        if (c.expect === 'refused') {
          const why = checkRefusal(c, o);
          if (why) failures.push(`${c.kind}: ${why}; sent ${c.bytes.subarray(0, 32).toString('hex')} (${c.bytes.length} bytes)`);
        } else if (!servedAnswer(o.answer)) {
          // A client that sent its FIN before the server answered is closed without a word.
          const why = checkRefusal(c, o);
          if (why) failures.push(`${c.kind}: neither served nor refused (${why})`);
        }
      } catch (err) {
        failures.push(String(err));
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  fuzzing = false;
  await realClient;

  t.comment(`cases: ${[...kinds].map(([k, n]) => `${k} ${n}`).join(', ')}`);
  t.same(failures.slice(0, 10), [], `every fuzz connection was answered as it should (${failures.length} failures)`);
  t.same(clientErrors, [], 'the real client never failed');
  t.ok(served > 0, `the real client was served during the fuzzing (${served} queries)`);

  const after = await connect(p.rwPort);
  t.equal((await after.query('select 1 as one')).rows[0].one, 1, 'and after it');
  await after.end();

  await waitFor('every session ended', () => p.app.sessions().length === 0, 30_000);
  await waitFor('no session counted on pg1', () => p.app.topology.get('pg1')?.activeSessions === 0, 30_000);
  t.pass('no session left: listener and topology both at 0');
  const internal = p.logs.filter((l) => l.event === 'session.internal_error' || String(l.event).startsWith('process.'));
  t.same(internal, [], 'no internal error and no uncaught throw');
  if (gc) {
    gc();
    const grown = process.memoryUsage().heapUsed - heapBefore;
    t.ok(grown < 64 * 1024 * 1024, `heap after GC grew by ${Math.round(grown / 1024)} kB (bound 64 MB)`);
  } else t.comment('global.gc not exposed: memory checked through the session counts only');
});
