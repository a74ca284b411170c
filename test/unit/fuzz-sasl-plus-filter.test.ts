// Property-based fuzzing of the SASL PLUS filter (protocol/sasl-plus-filter.ts): server startup
// streams with AuthenticationSASL lists (valid and malformed), other Authentication messages,
// every other type byte, lying lengths and junk, fed whole and in arbitrary chunkings, against a
// reference reading of the whole stream. FUZZ_RUNS inputs per property (test/helpers/fuzz.ts).
import t from 'tap';
import { SaslPlusFilter } from '../../src/protocol/sasl-plus-filter';
import { fc, runProperty, split, cutsArb, junkArb, lyingLengthArb, typed, cstrings, bytesArb } from '../helpers/fuzz';

const PLUS = 'SCRAM-SHA-256-PLUS';
const MAX_HELD = 64 * 1024;
const int32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n | 0);
  return b;
};

const mechanismsArb = fc.array(fc.constantFrom(PLUS, 'SCRAM-SHA-256', 'OAUTHBEARER', 'X'), { maxLength: 4 });

/** AuthenticationSASL: well-formed, or with the list's end broken (no final zero, bytes after it, an unterminated name). */
const saslArb: fc.Arbitrary<Buffer> = fc.tuple(mechanismsArb, fc.constantFrom('ok', 'no-final-zero', 'trailing', 'unterminated'), bytesArb(6)).map(([names, shape, extra]) => {
  let list: Buffer = Buffer.concat([cstrings(...names), Buffer.from([0])]);
  if (shape === 'no-final-zero') list = cstrings(...names);
  if (shape === 'trailing') list = Buffer.concat([list, extra.length ? extra : Buffer.from('x')]);
  if (shape === 'unterminated') list = Buffer.concat([cstrings(...names), Buffer.from('SCRAM')]);
  return typed(0x52, Buffer.concat([int32(10), list]));
});

const messageArb: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 4, arbitrary: saslArb },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(0, 5, 11, 12), bytesArb(20)).map(([code, data]) => typed(0x52, Buffer.concat([int32(code), data]))) },
  { weight: 2, arbitrary: fc.tuple(fc.integer({ min: 0, max: 255 }), bytesArb(20)).map(([type, body]) => typed(type, body)) },
  // Lying lengths; the body that follows is what it is.
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(0x52, 0x45, 0x53), bytesArb(12), lyingLengthArb([4, 9, MAX_HELD, MAX_HELD + 1])).map(([type, body, len]) => typed(type, body, len)) },
  // An Authentication message just under and just over the holding limit.
  { weight: 1, arbitrary: fc.constantFrom(MAX_HELD - 5, MAX_HELD - 4, MAX_HELD - 3).map((n) => typed(0x52, Buffer.concat([int32(10), cstrings(PLUS, 'SCRAM-SHA-256'), Buffer.from([0]), Buffer.alloc(n - 4 - 34)]))) },
  { weight: 1, arbitrary: junkArb },
);

const streamArb = fc.array(messageArb, { maxLength: 6 }).map((parts) => Buffer.concat(parts));

/**
 * The reference: a well-formed AuthenticationSASL list (names, then an empty one as the last
 * byte) that offers SCRAM-SHA-256-PLUS and something else loses PLUS; every other message,
 * malformed ones included, passes byte for byte.
 */
function referenceMessage(m: Buffer): Buffer {
  if (m[0] !== 0x52 || m.length < 9 || m.readInt32BE(5) !== 10) return m;
  const names: string[] = [];
  let at = 9;
  for (;;) {
    const end = m.indexOf(0, at);
    if (end < 0) return m;
    if (end === at) {
      if (end !== m.length - 1) return m;
      break;
    }
    names.push(m.toString('utf8', at, end));
    at = end + 1;
  }
  const kept = names.filter((n) => n !== PLUS);
  if (kept.length === names.length || kept.length === 0) return m;
  return typed(0x52, Buffer.concat([int32(10), cstrings(...kept), Buffer.from([0])]));
}

/** What the filter must have forwarded once the whole of `buf` went through it. */
function reference(buf: Buffer): Buffer {
  const out: Buffer[] = [];
  let pos = 0;
  while (pos + 5 <= buf.length) {
    const len = buf.readInt32BE(pos + 1);
    if (len < 4) {
      out.push(buf.subarray(pos)); // gave up: everything from here passes untouched
      return Buffer.concat(out);
    }
    const end = pos + 1 + len;
    const held = buf[pos] === 0x52 && len <= MAX_HELD;
    if (end > buf.length) {
      if (!held) out.push(buf.subarray(pos)); // a message still arriving passes as it comes
      return Buffer.concat(out);
    }
    out.push(held ? referenceMessage(buf.subarray(pos, end)) : buf.subarray(pos, end));
    pos = end;
  }
  return Buffer.concat(out); // a partial header is withheld until it is complete
}

function heldBytes(f: SaslPlusFilter): number {
  const held = (f as unknown as { held?: Buffer[] }).held;
  return held ? held.reduce((n, b) => n + b.length, 0) : 0;
}

t.test('SASL PLUS filter: forwards exactly the reference in every chunking, holding at most one small message', async (t) => {
  const runs = runProperty(
    fc.property(streamArb, cutsArb, (buf, cuts) => {
      const f = new SaslPlusFilter();
      const parts: Buffer[] = [];
      for (const c of split(buf, cuts)) {
        parts.push(f.transform(c));
        if (heldBytes(f) > MAX_HELD + 1) throw new Error(`holds ${heldBytes(f)} bytes`);
      }
      const got = Buffer.concat(parts);
      const want = reference(buf);
      if (!got.equals(want)) throw new Error(`forwarded ${got.length} bytes ${got.subarray(0, 80).toString('hex')}\nreference ${want.length} bytes ${want.subarray(0, 80).toString('hex')}`);
    }),
  );
  t.pass(`${runs} generated inputs`);
});
