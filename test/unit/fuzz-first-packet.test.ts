// Property-based fuzzing of the first-packet parser (protocol/first-packet.ts) and of the reader
// that feeds it from the socket (proxy/first-packet-reader.ts): generated streams of valid
// negotiation, cancel and startup packets, packets whose length lies, unknown codes, truncated
// packets and junk, fed whole and in arbitrary chunkings. FUZZ_RUNS inputs per property (see
// test/helpers/fuzz.ts).
import { EventEmitter } from 'node:events';
import t from 'tap';
import { readFirstPacket, MAX_STARTUP_PACKET, type FirstPacket } from '../../src/protocol/first-packet';
import { FirstPacketReader, type FirstPacketHandler } from '../../src/proxy/first-packet-reader';
import { CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, SSL_REQUEST_CODE } from '../../src/protocol/constants';
import { SqlState } from '../../src/errors';
import type { RelayEnd } from '../../src/net/relay-socket';
import type { Clock } from '../../src/clock';
import { fc, runProperty, split, cutsArb, junkArb, lyingLengthArb, cstringArb } from '../helpers/fuzz';

// ---- generators ---------------------------------------------------------------------------

function untyped(code: number, body: Buffer, length = 8 + body.length): Buffer {
  const out = Buffer.alloc(8 + body.length);
  out.writeInt32BE(length | 0, 0);
  out.writeUInt32BE(code >>> 0, 4);
  body.copy(out, 8);
  return out;
}

const paramsArb = fc.array(fc.tuple(fc.constantFrom('user', 'database', 'application_name', 'options', '__proto__', 'x'), cstringArb(24)), { maxLength: 5 });

function startupBody(params: [string, string][], terminated = true): Buffer {
  return Buffer.from(params.map(([k, v]) => `${k}\0${v}\0`).join('') + (terminated ? '\0' : ''), 'utf8');
}

/** A packet a client could send first; some valid, most subtly not. */
const packetArb: fc.Arbitrary<Buffer> = fc.oneof(
  fc.constant(untyped(SSL_REQUEST_CODE, Buffer.alloc(0))),
  fc.constant(untyped(GSSENC_REQUEST_CODE, Buffer.alloc(0))),
  fc.tuple(fc.integer(), fc.integer()).map(([pid, key]) => {
    const b = Buffer.alloc(8);
    b.writeInt32BE(pid, 0);
    b.writeInt32BE(key, 4);
    return untyped(CANCEL_REQUEST_CODE, b);
  }),
  // StartupMessage 3.x, with or without a user, sometimes without the final zero.
  fc.tuple(fc.integer({ min: 0, max: 0xffff }), paramsArb, fc.boolean()).map(([minor, params, term]) => untyped((3 << 16) | minor, startupBody(params, term))),
  // A valid-looking packet whose length word lies.
  fc.tuple(fc.constantFrom(SSL_REQUEST_CODE, GSSENC_REQUEST_CODE, CANCEL_REQUEST_CODE, 3 << 16), fc.uint8Array({ maxLength: 24 }), lyingLengthArb([8, 16, MAX_STARTUP_PACKET])).map(([code, body, len]) =>
    untyped(code, Buffer.from(body), len),
  ),
  // Any code at all (other protocol versions, 1234.x requests we do not know).
  fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.uint8Array({ maxLength: 24 })).map(([code, body]) => untyped(code, Buffer.from(body))),
  // A large but legal startup packet, and one just over the limit.
  fc.constantFrom(MAX_STARTUP_PACKET, MAX_STARTUP_PACKET + 1).map((size) => {
    const value = 'v'.repeat(size - 8 - 'user\0'.length - 2 - 'database\0'.length - 'u\0'.length);
    return untyped(3 << 16, startupBody([['user', 'u'], ['database', value]]));
  }),
);

/** Packets, possibly truncated, with junk between: what a confused or hostile client sends. */
const streamArb: fc.Arbitrary<Buffer> = fc
  .array(
    fc.oneof(
      { weight: 6, arbitrary: packetArb },
      { weight: 1, arbitrary: fc.tuple(packetArb, fc.nat()).map(([p, n]) => p.subarray(0, n % (p.length + 1))) },
      { weight: 1, arbitrary: junkArb },
    ),
    { minLength: 1, maxLength: 4 },
  )
  .map((parts) => Buffer.concat(parts));

// ---- what a result means ------------------------------------------------------------------

const KINDS = new Set(['incomplete', 'ssl', 'gssenc', 'cancel', 'startup', 'direct-tls', 'invalid']);

/** The parts of a result that must not depend on how the bytes were cut (the reason text may). */
function essence(p: FirstPacket): string {
  switch (p.kind) {
    case 'invalid':
      return `invalid ${p.sqlstate}`;
    case 'startup':
      return `startup ${p.size} 3.${p.protocolMinor} ${JSON.stringify(Object.entries(p.params))}`;
    case 'cancel':
      return `cancel ${p.processId} ${p.secretKey}`;
    case 'ssl':
    case 'gssenc':
      return `${p.kind} ${p.size}`;
    default:
      return p.kind;
  }
}

// ---- the parser ---------------------------------------------------------------------------

t.test('readFirstPacket: total, bounded, and a prefix never decides differently from the whole', async (t) => {
  const runs = runProperty(
    fc.property(streamArb, cutsArb, (buf, cuts) => {
      const whole = readFirstPacket(buf);
      if (!KINDS.has(whole.kind)) throw new Error(`unknown kind ${whole.kind}`);
      // Bounded: a result is never "wait for more" beyond what a legal packet can hold.
      if (whole.kind === 'incomplete' && buf.length >= MAX_STARTUP_PACKET) throw new Error(`incomplete after ${buf.length} bytes`);
      if ('size' in whole && (whole.size > buf.length || whole.size > MAX_STARTUP_PACKET)) throw new Error(`size ${whole.size} of ${buf.length}`);
      // A lying length is refused from the length word alone.
      if (buf.length >= 4 && buf[0] !== 0x16) {
        const len = buf.readInt32BE(0);
        if ((len < 8 || len > MAX_STARTUP_PACKET) && !(whole.kind === 'invalid' && whole.sqlstate === SqlState.PROTOCOL_VIOLATION)) {
          throw new Error(`length ${len} gave ${whole.kind}`);
        }
      }
      if (whole.kind === 'invalid' && !whole.reason) throw new Error('invalid without a reason');
      // Every prefix the socket could have delivered first is either "not yet" or the same answer.
      for (const c of cuts) {
        const prefix = readFirstPacket(buf.subarray(0, c % (buf.length + 1)));
        if (prefix.kind !== 'incomplete' && essence(prefix) !== essence(whole)) {
          throw new Error(`prefix of ${c % (buf.length + 1)} bytes: ${essence(prefix)}, whole: ${essence(whole)}`);
        }
      }
    }),
  );
  t.pass(`${runs} generated inputs`);
});

t.test('readFirstPacket: a valid StartupMessage is read exactly, whatever follows it', async (t) => {
  const runs = runProperty(
    fc.property(fc.integer({ min: 0, max: 0xffff }), paramsArb, cstringArb(12), fc.uint8Array({ maxLength: 32 }), (minor, params, user, after) => {
      const all: [string, string][] = [...params.filter(([k]) => k !== 'user'), ['user', user || 'u']];
      const packet = untyped((3 << 16) | minor, startupBody(all));
      const p = readFirstPacket(Buffer.concat([packet, Buffer.from(after)]));
      if (p.kind !== 'startup') throw new Error(`got ${p.kind}: ${'reason' in p ? p.reason : ''}`);
      if (p.size !== packet.length || p.protocolMinor !== minor) throw new Error(`size ${p.size}/${packet.length}, minor ${p.protocolMinor}/${minor}`);
      const expected: Record<string, string> = Object.create(null);
      for (const [k, v] of all) expected[k] = v;
      if (JSON.stringify(Object.entries(p.params)) !== JSON.stringify(Object.entries(expected))) throw new Error(`params ${JSON.stringify(p.params)}`);
    }),
  );
  t.pass(`${runs} generated inputs`);
});

// ---- the reader ---------------------------------------------------------------------------

const fakeClock: Clock = { now: () => 0, setTimeout: () => ({ clear: () => undefined }) } as unknown as Clock;

interface ReaderRun {
  events: string[];
  /** Most bytes the reader held after a chunk while it was still reading (not overflowed). */
  maxHeld: number;
}

/**
 * Feeds `chunks` to a FirstPacketReader whose handler acts like a session: negotiation requests
 * are answered and reading goes on; any other packet stops parsing (the session routes, holding
 * what else arrives); an invalid packet or an overflow ends it.
 */
function runReader(chunks: Buffer[]): ReaderRun {
  const socket = new EventEmitter() as unknown as RelayEnd;
  const events: string[] = [];
  let ended = false;
  const handler: FirstPacketHandler = {
    firstPacket(p) {
      events.push(essence(p));
      if (p.kind === 'ssl' || p.kind === 'gssenc') return true;
      if (p.kind === 'invalid') {
        ended = true;
        reader.dispose();
      } else reader.hold();
      return false;
    },
    loginTimedOut: () => events.push('timeout'),
    firstPacketsOverflow() {
      events.push('overflow');
      ended = true;
      reader.dispose();
    },
  };
  const reader = new FirstPacketReader(socket, fakeClock, handler);
  reader.parse(1000);
  let maxHeld = 0;
  for (const c of chunks) {
    if (ended) break;
    socket.emit('data', c);
    if (!ended) maxHeld = Math.max(maxHeld, reader.pending);
  }
  return { events, maxHeld };
}

t.test('FirstPacketReader: the same packets and the same end however the bytes are cut; never holds more than a startup packet', async (t) => {
  const runs = runProperty(
    fc.property(fc.array(streamArb, { minLength: 1, maxLength: 3 }), cutsArb, (parts, cuts) => {
      const buf = Buffer.concat(parts);
      const whole = runReader([buf]);
      const cut = runReader(split(buf, cuts));
      if (whole.events.join('|') !== cut.events.join('|')) throw new Error(`whole: ${whole.events.join(' | ')}\ncut:   ${cut.events.join(' | ')}`);
      for (const r of [whole, cut]) if (r.maxHeld > MAX_STARTUP_PACKET) throw new Error(`held ${r.maxHeld} bytes without an overflow`);
    }),
  );
  t.pass(`${runs} generated inputs`);
});
