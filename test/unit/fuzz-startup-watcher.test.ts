// Property-based fuzzing of the startup watcher (protocol/startup-watcher.ts): the server's
// startup stream built from valid messages of every kind a server sends before ReadyForQuery,
// messages of every other type byte, lying lengths, truncated error field lists and junk, fed
// whole and in arbitrary chunkings. FUZZ_RUNS inputs per property (test/helpers/fuzz.ts).
import t from 'tap';
import { StartupWatcher, MAX_STARTUP_BACKEND_MESSAGE } from '../../src/protocol/startup-watcher';
import { SqlState } from '../../src/errors';
import { fc, runProperty, split, cutsArb, junkArb, lyingLengthArb, typed, cstrings, cstringArb, bytesArb } from '../helpers/fuzz';

const int32s = (...n: number[]): Buffer => {
  const b = Buffer.alloc(4 * n.length);
  n.forEach((v, i) => b.writeInt32BE(v | 0, 4 * i));
  return b;
};

/** A valid startup message and the event the watcher must report for it ('' for none). */
interface Valid {
  bytes: Buffer;
  event: string;
}

const fieldsArb = fc.record({ S: cstringArb(8), V: cstringArb(8), C: cstringArb(5), M: cstringArb(30), D: cstringArb(10) }, { requiredKeys: [] });

function errorBody(fields: Partial<Record<string, string>>): Buffer {
  return Buffer.concat([...Object.entries(fields).map(([k, v]) => Buffer.from(`${k}${v}\0`, 'utf8')), Buffer.from([0])]);
}

const validArb: fc.Arbitrary<Valid> = fc.oneof(
  // Authentication*: Ok, cleartext, MD5 + salt, SASL + mechanisms, SASLContinue/Final, GSS/SSPI.
  fc.constantFrom(0, 3, 7, 9).map((code) => ({ bytes: typed(0x52, int32s(code)), event: '' })),
  bytesArb(4).map((salt) => ({ bytes: typed(0x52, Buffer.concat([int32s(5), salt])), event: '' })),
  fc.subarray(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256', 'OAUTHBEARER']).map((names) => ({ bytes: typed(0x52, Buffer.concat([int32s(10), cstrings(...names), Buffer.from([0])])), event: '' })),
  fc.tuple(fc.constantFrom(8, 11, 12), bytesArb(200)).map(([code, data]) => ({ bytes: typed(0x52, Buffer.concat([int32s(code), data])), event: '' })),
  fc.tuple(fc.nat(0xffff), fc.array(cstringArb(12), { maxLength: 3 })).map(([minor, names]) => ({ bytes: typed(0x76, Buffer.concat([int32s((3 << 16) | minor, names.length), cstrings(...names)])), event: '' })),
  fc.tuple(cstringArb(), cstringArb()).map(([k, v]) => ({ bytes: typed(0x53, cstrings(k, v)), event: '' })),
  fieldsArb.map((f) => ({ bytes: typed(0x4e, errorBody(f)), event: '' })),
  fieldsArb.map((f) => ({ bytes: typed(0x45, errorBody(f)), event: `error ${f.C} ${f.M} ${f.V ?? f.S}` })),
  fc.tuple(fc.integer(), fc.integer()).map(([pid, key]) => ({ bytes: typed(0x4b, int32s(pid, key)), event: `key ${pid} ${key}` })),
  // A protocol 3.2 key (longer than 4 bytes): no number form, no event.
  fc.integer({ min: 5, max: 256 }).map((n) => ({ bytes: typed(0x4b, Buffer.concat([int32s(1), Buffer.alloc(n, 7)])), event: '' })),
);

/** Not valid during startup: another type byte, a lying length, a truncated field list, a bad status. */
const invalidArb: fc.Arbitrary<Buffer> = fc.oneof(
  fc.tuple(fc.integer({ min: 0, max: 255 }), bytesArb(12)).map(([type, body]) => typed(type, body)),
  fc.tuple(fc.constantFrom(0x52, 0x76, 0x45, 0x4e, 0x53, 0x4b, 0x5a), bytesArb(12), lyingLengthArb([5, 6, 8, 12, 264, 265, MAX_STARTUP_BACKEND_MESSAGE])).map(([type, body, len]) => typed(type, body, len)),
  cstringArb(20).map((s) => typed(0x45, Buffer.from(`M${s}`))),
  fc.integer({ min: 0, max: 255 }).map((s) => typed(0x5a, Buffer.from([s]))),
  junkArb,
);

const streamArb: fc.Arbitrary<Buffer> = fc
  .array(fc.oneof({ weight: 5, arbitrary: validArb.map((v) => v.bytes) }, { weight: 1, arbitrary: invalidArb }, { weight: 1, arbitrary: fc.constantFrom('I', 'T', 'E').map((s) => typed(0x5a, Buffer.from(s))) }), { maxLength: 8 })
  .map((parts) => Buffer.concat(parts));

// ---- running the watcher ------------------------------------------------------------------

interface Run {
  events: string[];
  done: boolean;
  malformed: boolean;
  /** Where the malformed message began in the whole stream; with -1 chunks, the bound it must be below. */
  badAt?: number;
  badBefore?: number;
  largestBody: number;
}

function run(chunks: Buffer[]): Run {
  const events: string[] = [];
  const w = new StartupWatcher({
    onBackendKeyData: (pid, key) => events.push(`key ${pid} ${key}`),
    onReadyForQuery: (s) => events.push(`ready ${s}`),
    onError: (f) => events.push(w.malformed ? `malformed ${f.code}` : `error ${f.code} ${f.message} ${f.severity}`),
  });
  const r: Run = { events, done: false, malformed: false, largestBody: 0 };
  let base = 0;
  for (const c of chunks) {
    const good = w.feed(c);
    const body = (w as unknown as { body?: Buffer }).body;
    r.largestBody = Math.max(r.largestBody, body?.length ?? 0);
    if (w.malformed) {
      if (good >= 0) r.badAt = base + good;
      else r.badBefore = base;
      if (good > c.length || good < -1) throw new Error(`feed returned ${good} for a chunk of ${c.length}`);
      break;
    }
    if (good !== c.length) throw new Error(`feed returned ${good} for a well-formed chunk of ${c.length}`);
    base += c.length;
    if (w.done) break;
  }
  r.done = w.done;
  r.malformed = w.malformed;
  return r;
}

t.test('startup watcher: the same events, end and malformed offset in every chunking; bounded bodies', async (t) => {
  const runs = runProperty(
    fc.property(streamArb, cutsArb, (buf, cuts) => {
      const whole = run([buf]);
      const cut = run(split(buf, cuts));
      if (whole.events.join('|') !== cut.events.join('|')) throw new Error(`whole: ${whole.events.join(' | ')}\ncut:   ${cut.events.join(' | ')}`);
      if (whole.done !== cut.done || whole.malformed !== cut.malformed) throw new Error(`done/malformed ${whole.done}/${whole.malformed} vs ${cut.done}/${cut.malformed}`);
      if (cut.badAt !== undefined && cut.badAt !== whole.badAt) throw new Error(`malformed message at ${cut.badAt} cut, ${whole.badAt} whole`);
      if (cut.badBefore !== undefined && !(whole.badAt! < cut.badBefore)) throw new Error(`malformed message at ${whole.badAt}, cut run says before ${cut.badBefore}`);
      if (whole.malformed && !whole.events[whole.events.length - 1]!.startsWith(`malformed ${SqlState.PROTOCOL_VIOLATION}`)) throw new Error('malformed without a protocol violation event');
      for (const r of [whole, cut]) if (r.largestBody > MAX_STARTUP_BACKEND_MESSAGE) throw new Error(`a ${r.largestBody}-byte body`);
    }),
  );
  t.pass(`${runs} generated inputs`);
});

t.test('startup watcher: a valid startup is read exactly, up to the first ReadyForQuery and not beyond', async (t) => {
  const runs = runProperty(
    fc.property(fc.array(validArb, { maxLength: 10 }), fc.constantFrom('I', 'T', 'E'), bytesArb(32), cutsArb, (msgs, status, after, cuts) => {
      const buf = Buffer.concat([...msgs.map((m) => m.bytes), typed(0x5a, Buffer.from(status)), after]);
      const expected = [...msgs.map((m) => m.event).filter((e) => e !== ''), `ready ${status}`];
      const r = run(split(buf, cuts));
      if (r.events.join('|') !== expected.join('|')) throw new Error(`events ${r.events.join(' | ')}\nexpected ${expected.join(' | ')}`);
      if (!r.done || r.malformed) throw new Error(`done ${r.done}, malformed ${r.malformed}`);
    }),
  );
  t.pass(`${runs} generated inputs`);
});

t.test('startup watcher: every type byte a server may not send during startup is malformed where it begins', async (t) => {
  const allowed = new Set([0x52, 0x76, 0x45, 0x4e, 0x53, 0x4b, 0x5a]);
  const runs = runProperty(
    fc.property(fc.array(validArb, { maxLength: 4 }), fc.integer({ min: 0, max: 255 }).filter((b) => !allowed.has(b)), bytesArb(16), cutsArb, (msgs, type, body, cuts) => {
      const before = Buffer.concat(msgs.map((m) => m.bytes));
      const buf = Buffer.concat([before, typed(type, body)]);
      const whole = run([buf]);
      if (!whole.malformed || whole.badAt !== before.length) throw new Error(`type 0x${type.toString(16)}: malformed ${whole.malformed} at ${whole.badAt}, expected ${before.length}`);
      const cut = run(split(buf, cuts));
      if (!cut.malformed || (cut.badAt !== undefined && cut.badAt !== before.length) || (cut.badBefore !== undefined && before.length >= cut.badBefore)) throw new Error(`cut: ${JSON.stringify(cut)}`);
    }),
  );
  t.pass(`${runs} generated inputs`);
});
