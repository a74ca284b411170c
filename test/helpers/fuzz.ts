// Shared pieces of the property-based fuzz tests (test/unit/fuzz-*.test.ts): how many inputs to
// run, the generators of protocol-shaped bytes (valid messages, lying lengths, every type byte,
// junk) and the chunkings TCP may impose. Each property's input count comes from FUZZ_RUNS (a
// few thousand by default, so CI stays fast); FUZZ_SEED replays a failure that fast-check
// reported. A hand run at scale:
//   FUZZ_RUNS=1000000 npx tap --timeout=3600 test/unit/fuzz-frame-tracker.test.ts
// (bench/fuzz.js runs every target that way and prints the counts and times).
import fc from 'fast-check';

export { fc };

const DEFAULT_RUNS = 2000;

/** fast-check parameters for one property: FUZZ_RUNS inputs (default 2000), FUZZ_SEED when set. */
export function fuzzParams(): fc.Parameters<unknown> {
  const runs = Number(process.env.FUZZ_RUNS ?? DEFAULT_RUNS);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`FUZZ_RUNS must be a positive integer, got ${process.env.FUZZ_RUNS}`);
  const seed = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
  return { numRuns: runs, ...(seed === undefined ? {} : { seed }) };
}

/** Runs a property with fuzzParams() and returns how many inputs it ran (for the test's comment). */
export function runProperty<Ts extends [unknown, ...unknown[]]>(prop: fc.IPropertyWithHooks<Ts>): number {
  const params = fuzzParams() as fc.Parameters<Ts>;
  fc.assert(prop, params);
  return params.numRuns!;
}

/** Cuts `buf` at the given positions (taken modulo its length + 1, sorted); an empty chunk may occur. */
export function split(buf: Buffer, cuts: readonly number[]): Buffer[] {
  const at = cuts.map((c) => c % (buf.length + 1)).sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const c of at) {
    out.push(buf.subarray(from, c));
    from = c;
  }
  out.push(buf.subarray(from));
  return out;
}

/** Split points for `split`: none, a few, or many (down to one byte per chunk for short inputs). */
export const cutsArb: fc.Arbitrary<number[]> = fc.oneof(
  { weight: 1, arbitrary: fc.constant<number[]>([]) },
  { weight: 4, arbitrary: fc.array(fc.nat(1 << 20), { maxLength: 6 }) },
  { weight: 2, arbitrary: fc.array(fc.nat(1 << 20), { maxLength: 64 }) },
);

/** One byte at a time: the chunking that exercises every header split. */
export function bytewise(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i++) out.push(buf.subarray(i, i + 1));
  return out;
}

export const bytesArb = (maxLength: number): fc.Arbitrary<Buffer> => fc.uint8Array({ maxLength }).map((a) => Buffer.from(a));

/** Junk: random bytes, short runs of one byte, or text that a wrong client might send. */
export const junkArb: fc.Arbitrary<Buffer> = fc.oneof(
  bytesArb(64),
  fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 40 })).map(([b, n]) => Buffer.alloc(n, b)),
  fc.constantFrom('GET / HTTP/1.1\r\nHost: x\r\n\r\n', 'SSH-2.0-OpenSSH_9.6\r\n', '\x16\x03\x01\x02\x00\x01', '\0\0\0\0').map((s) => Buffer.from(s, 'latin1')),
);

/**
 * Values for an Int32 length word that lie: below the 4 bytes it counts, negative, near the
 * sign bit, near a limit of `limits`, or anything at all.
 */
export function lyingLengthArb(limits: readonly number[] = []): fc.Arbitrary<number> {
  return fc.oneof(
    fc.integer({ min: -8, max: 8 }),
    fc.constantFrom(-1, -0x80000000, 0x7fffffff, 0x40000000, 0x3fffffff, 65536, 65535, 10000, 10001, ...limits, ...limits.map((l) => l + 1), ...limits.map((l) => l - 1)),
    fc.integer({ min: -0x80000000, max: 0x7fffffff }),
  );
}

/** A typed message: Byte1 type | Int32 length (4 + body unless `length` lies) | body. */
export function typed(type: number, body: Buffer, length = 4 + body.length): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out[0] = type;
  out.writeInt32BE(length | 0, 1);
  body.copy(out, 5);
  return out;
}

/** NUL-terminated strings, concatenated. */
export function cstrings(...parts: string[]): Buffer {
  return Buffer.from(parts.map((p) => `${p}\0`).join(''), 'utf8');
}

/** Text without NUL bytes (names and values of parameters, error fields). */
export const cstringArb = (maxLength = 16): fc.Arbitrary<string> => fc.string({ maxLength, unit: 'grapheme-ascii' }).map((s) => s.replace(/\0/g, ''));
