// Property-based fuzzing of the frame tracker (protocol/frame-tracker.ts): streams of typed
// messages with every type byte, lying lengths and junk, fed in arbitrary chunkings, against a
// reference reading of the whole stream. FUZZ_RUNS inputs per property (test/helpers/fuzz.ts).
import t from 'tap';
import { FrameTracker } from '../../src/protocol/frame-tracker';
import { fc, runProperty, split, cutsArb, junkArb, lyingLengthArb, typed, bytesArb } from '../helpers/fuzz';

type Side = 'server' | 'client';

/** A message with any type byte and an honest length. */
const honestArb: fc.Arbitrary<Buffer> = fc.oneof(
  fc.tuple(fc.integer({ min: 0, max: 255 }), bytesArb(40)).map(([type, body]) => typed(type, body)),
  // The types the tracker counts, so counts and statuses are exercised often.
  fc.tuple(fc.constantFrom(0x5a, 0x51, 0x53, 0x46, 0x58), bytesArb(3)).map(([type, body]) => typed(type, body)),
  fc.constantFrom('I', 'T', 'E').map((s) => typed(0x5a, Buffer.from(s))),
);

/** Honest messages, messages whose length lies (no body or a short one), junk. */
const streamArb: fc.Arbitrary<Buffer> = fc
  .array(
    fc.oneof(
      { weight: 8, arbitrary: honestArb },
      { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 0, max: 255 }), bytesArb(8), lyingLengthArb([4, 5])).map(([type, body, len]) => typed(type, body, len)) },
      { weight: 1, arbitrary: junkArb },
    ),
    { maxLength: 12 },
  )
  .map((parts) => Buffer.concat(parts));

interface Expected {
  count: number;
  status: number;
  terminated: boolean;
  broken: boolean;
  atBoundary: boolean;
  /** Offsets at which a message begins or the stream ends with a whole message. */
  boundaries: Set<number>;
}

/**
 * The reference: the protocol's own reading ("Message Formats": Byte1 type, Int32 length counting
 * itself), over the whole buffer at once. A length word below 4, as a signed Int32, means the
 * stream makes no sense from there on.
 */
function reference(buf: Buffer, side: Side): Expected {
  const e: Expected = { count: 0, status: 0x49, terminated: false, broken: false, atBoundary: true, boundaries: new Set([0]) };
  let pos = 0;
  while (pos < buf.length) {
    if (pos + 5 > buf.length) {
      e.atBoundary = false;
      break;
    }
    const type = buf[pos];
    const len = buf.readInt32BE(pos + 1);
    if (len < 4) {
      e.broken = true;
      e.atBoundary = false;
      break;
    }
    if (side === 'server' && type === 0x5a) {
      e.count++;
      if (len > 4 && pos + 5 < buf.length) e.status = buf[pos + 5];
    }
    if (side === 'client') {
      if (type === 0x51 || type === 0x53 || type === 0x46) e.count++;
      if (type === 0x58) e.terminated = true;
    }
    const end = pos + 1 + len;
    if (end > buf.length) {
      e.atBoundary = false;
      break;
    }
    pos = end;
    e.boundaries.add(pos);
  }
  return e;
}

function check(buf: Buffer, cuts: number[], side: Side): void {
  const want = reference(buf, side);
  const f = new FrameTracker(side);
  let at = 0;
  for (const chunk of split(buf, cuts)) {
    f.feed(chunk);
    at += chunk.length;
    // At a boundary exactly where the reference puts one (before the stream turned to nonsense).
    const expectBoundary = want.boundaries.has(at) && !(want.broken && at > Math.max(...want.boundaries));
    if (!f.broken && f.atBoundary !== expectBoundary) throw new Error(`${side}: atBoundary ${f.atBoundary} after ${at} bytes, reference ${expectBoundary}`);
  }
  const got = { count: f.count, status: f.status, terminated: f.terminated, broken: f.broken, atBoundary: f.atBoundary };
  const exp = { count: want.count, status: want.status, terminated: want.terminated, broken: want.broken, atBoundary: want.atBoundary };
  if (JSON.stringify(got) !== JSON.stringify(exp)) throw new Error(`${side}: tracker ${JSON.stringify(got)}, reference ${JSON.stringify(exp)}`);
}

t.test('frame tracker: counts, status, Terminate, boundaries and brokenness match the reference in every chunking', async (t) => {
  const runs = runProperty(
    fc.property(streamArb, cutsArb, fc.constantFrom<Side>('server', 'client'), (buf, cuts, side) => check(buf, cuts, side)),
  );
  t.pass(`${runs} generated inputs`);
});

t.test('frame tracker: a valid stream is read exactly (every cut point is a boundary or not, as it should)', async (t) => {
  const runs = runProperty(
    fc.property(fc.array(honestArb, { maxLength: 16 }), cutsArb, fc.constantFrom<Side>('server', 'client'), (msgs, cuts, side) => {
      const buf = Buffer.concat(msgs);
      check(buf, cuts, side);
      const f = new FrameTracker(side);
      f.feed(buf);
      if (!f.atBoundary || f.broken) throw new Error('a valid stream must end at a boundary');
    }),
  );
  t.pass(`${runs} generated inputs`);
});
