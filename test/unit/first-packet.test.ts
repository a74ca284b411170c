import t from 'tap';
import type { Test } from 'tap';
import { readFirstPacket, MAX_STARTUP_PACKET, type FirstPacket } from '../../src/protocol/first-packet';

// --- tiny local builders (layouts from the protocol docs, "Message Formats") ---

function untyped(code: number, payload: Buffer = Buffer.alloc(0), declaredLength?: number): Buffer {
  const b = Buffer.alloc(8 + payload.length);
  b.writeInt32BE(declaredLength ?? b.length, 0);
  b.writeUInt32BE(code >>> 0, 4);
  payload.copy(b, 8);
  return b;
}

function startupBody(params: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(params)) parts.push(Buffer.from(`${k}\0${v}\0`, 'utf8'));
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

function startup(params: Record<string, string>, major = 3, minor = 0): Buffer {
  return untyped((major << 16) | minor, startupBody(params));
}

function cancel(processId: number, secretKey: number): Buffer {
  const p = Buffer.alloc(8);
  p.writeInt32BE(processId, 0);
  p.writeUInt32BE(secretKey >>> 0, 4);
  return untyped(80877102, p);
}

/** Deterministic PRNG (mulberry32) so a failing seed can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

function randomBytes(rand: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

/** Every strict prefix says 'incomplete'; the whole packet, alone or with extra bytes, gives `expected`. */
function checkEverySplit(t: Test, packet: Buffer, expected: FirstPacket): void {
  for (let i = 0; i < packet.length; i++) {
    const r = readFirstPacket(packet.subarray(0, i));
    if (r.kind !== 'incomplete') {
      t.fail(`prefix of ${i} bytes must be incomplete, got ${JSON.stringify(r)}`);
      return;
    }
  }
  t.same(readFirstPacket(packet), expected, 'whole packet');
  const extra = Buffer.from('Q\0\0\0\x0cSELECT 1\0');
  const withExtra = Buffer.concat([packet, extra]);
  const r = readFirstPacket(withExtra);
  t.same(r, expected, 'packet followed by pipelined bytes');
  if ('size' in r) t.same(withExtra.subarray(r.size), extra, 'size leaves exactly the extra bytes');
}

// --- tests ---

t.test('StartupMessage 3.0 at every split point', async (t) => {
  const params = { user: 'app', database: 'orders', application_name: 'billing', client_encoding: 'UTF8' };
  const packet = startup(params);
  checkEverySplit(t, packet, { kind: 'startup', size: packet.length, protocolMajor: 3, protocolMinor: 0, params });
});

t.test('StartupMessage keeps UTF-8 text and treats names as plain data', async (t) => {
  const packet = startup({ user: 'jürgen', database: 'τεστ', __proto__x: 'a' });
  const r = readFirstPacket(packet);
  if (r.kind !== 'startup') throw new Error(JSON.stringify(r));
  t.equal(r.params.user, 'jürgen');
  t.equal(r.params.database, 'τεστ');

  const raw = untyped(3 << 16, Buffer.from('user\0bob\0__proto__\0evil\0\0'));
  const p = readFirstPacket(raw);
  if (p.kind !== 'startup') throw new Error(JSON.stringify(p));
  t.equal(p.params['__proto__'], 'evil', '__proto__ is an ordinary key');
  t.equal(Object.getPrototypeOf(p.params), null);
  t.same(Object.keys(p.params), ['user', '__proto__']);
});

t.test('StartupMessage with a newer 3.x minor version is accepted (the server negotiates)', async (t) => {
  const r = readFirstPacket(startup({ user: 'u' }, 3, 2));
  t.match(r, { kind: 'startup', protocolMajor: 3, protocolMinor: 2 });
});

t.test('SSLRequest, GSSENCRequest and CancelRequest at every split point', async (t) => {
  checkEverySplit(t, untyped(80877103), { kind: 'ssl', size: 8 });
  checkEverySplit(t, untyped(80877104), { kind: 'gssenc', size: 8 });
  checkEverySplit(t, cancel(4242, 0x1234abcd), { kind: 'cancel', size: 16, processId: 4242, secretKey: 0x1234abcd });
  // A key with the top bit set reads as a negative Int32, as the protocol's Int32 says.
  checkEverySplit(t, cancel(7, 0xdeadbeef), { kind: 'cancel', size: 16, processId: 7, secretKey: 0xdeadbeef | 0 });
});

t.test('direct TLS is decided from the first byte alone', async (t) => {
  // Start of a TLS 1.2+ ClientHello record: handshake(22), version 3.1, length, type 1.
  const hello = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]);
  t.same(readFirstPacket(Buffer.alloc(0)), { kind: 'incomplete' });
  for (let i = 1; i <= hello.length; i++) t.same(readFirstPacket(hello.subarray(0, i)), { kind: 'direct-tls' });
});

t.test('absurd lengths are refused from the length word, without waiting for the body', async (t) => {
  for (const length of [0, 1, 4, 7, -1, -8, MAX_STARTUP_PACKET + 1, 65_536, 0x7fffffff, -0x80000000]) {
    const head = Buffer.alloc(4);
    head.writeInt32BE(length, 0);
    const r = readFirstPacket(head);
    t.match(r, { kind: 'invalid', sqlstate: '08P01', reason: /length/ }, `length ${length}`);
  }
  t.match(readFirstPacket(Buffer.from([0x47])), { kind: 'invalid', sqlstate: '08P01' }, 'one byte that no legal length starts with');
  t.match(readFirstPacket(Buffer.from([0x00, 0x01])), { kind: 'invalid' }, 'at least 65536');
  t.match(readFirstPacket(Buffer.from([0x00, 0x00, 0x28])), { kind: 'invalid' }, 'at least 10240');
  t.same(readFirstPacket(Buffer.from([0x00, 0x00, 0x27])), { kind: 'incomplete' }, '0x27xx can still be <= 10000');
  t.match(readFirstPacket(Buffer.from('GET / HTTP/1.1\r\n')), { kind: 'invalid', reason: /GET/ }, 'names what arrived');
});

t.test('the 10000-byte limit is inclusive', async (t) => {
  const fixed = startup({ user: 'u', pad: '' }).length;
  const atLimit = startup({ user: 'u', pad: 'x'.repeat(MAX_STARTUP_PACKET - fixed) });
  t.equal(atLimit.length, MAX_STARTUP_PACKET);
  t.match(readFirstPacket(atLimit), { kind: 'startup', size: MAX_STARTUP_PACKET });
  const over = startup({ user: 'u', pad: 'x'.repeat(MAX_STARTUP_PACKET - fixed + 1) });
  t.match(readFirstPacket(over.subarray(0, 8)), { kind: 'invalid', sqlstate: '08P01' });
});

t.test('special requests with the wrong length are refused as soon as the code is known', async (t) => {
  t.match(readFirstPacket(untyped(80877103, Buffer.alloc(4))), { kind: 'invalid', sqlstate: '08P01', reason: /SSLRequest/ });
  t.match(readFirstPacket(untyped(80877104, Buffer.alloc(4))), { kind: 'invalid', reason: /GSSENCRequest/ });
  t.match(readFirstPacket(untyped(80877102, Buffer.alloc(4))), { kind: 'invalid', reason: /CancelRequest/ });
  // A protocol 3.2 style CancelRequest with a 32-byte key: only the 16-byte form is supported.
  const long = untyped(80877102, Buffer.alloc(36));
  t.match(readFirstPacket(long.subarray(0, 8)), { kind: 'invalid', reason: /CancelRequest/ }, 'decided at 8 bytes');
});

t.test('unsupported protocol versions get 0A000, decided from the header', async (t) => {
  for (const [major, minor] of [[2, 0], [1, 0], [4, 0], [4, 1], [0, 0], [1234, 5681], [65535, 65535]]) {
    const packet = untyped((major << 16) | minor, Buffer.alloc(92));
    const r = readFirstPacket(packet.subarray(0, 8));
    t.match(r, { kind: 'invalid', sqlstate: '0A000', reason: `unsupported frontend protocol ${major}.${minor}` }, `${major}.${minor}`);
  }
});

t.test('a StartupMessage without a user is refused like PostgreSQL does (28000)', async (t) => {
  t.match(readFirstPacket(startup({ database: 'orders' })), {
    kind: 'invalid',
    sqlstate: '28000',
    reason: 'no PostgreSQL user name specified in startup packet',
  });
  t.match(readFirstPacket(startup({ user: '' })), { kind: 'invalid', sqlstate: '28000' }, 'empty user');
  t.match(readFirstPacket(startup({})), { kind: 'invalid', sqlstate: '28000' }, 'no parameters at all');
});

t.test('broken parameter lists are protocol violations', async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    ['', 'empty body', /not terminated/],
    ['user\0bob\0', 'no final zero byte', /not terminated/],
    ['user\0bob\0\0xx', 'bytes after the terminator', /after the terminator/],
    ['user\0bob\0database', 'name without NUL', /truncated parameter name/],
    ['user\0bob\0database\0', 'name without value', /"database" has no value/],
    ['user\0bo', 'value without NUL', /"user" has no value/],
    ['user\0\0', 'value of user eats the terminator', /not terminated/],
  ];
  for (const [body, what, reason] of cases) {
    const r = readFirstPacket(untyped(3 << 16, Buffer.from(body, 'latin1')));
    t.match(r, { kind: 'invalid', sqlstate: '08P01', reason }, what);
  }
});

t.test('garbage never throws, and a decision never changes as more bytes arrive', async (t) => {
  const codes = [80877102, 80877103, 80877104, 3 << 16, (3 << 16) | 2, 2 << 16];
  let decided = 0;
  for (let seed = 1; seed <= 5000; seed++) {
    const rand = prng(seed);
    let buf: Buffer;
    if (seed % 2 === 0) {
      buf = randomBytes(rand, Math.floor(rand() * 80));
    } else {
      // A plausible header over a random body, so the deeper branches are reached too.
      const len = 8 + Math.floor(rand() * 72);
      buf = randomBytes(rand, len + Math.floor(rand() * 8));
      buf.writeInt32BE(rand() < 0.9 ? len : Math.floor(rand() * 2 ** 32) | 0, 0);
      buf.writeUInt32BE(codes[Math.floor(rand() * codes.length)] >>> 0, 4);
      if (rand() < 0.5) buf[len - 1] = 0;
    }
    let first: FirstPacket | undefined;
    for (let i = 0; i <= buf.length; i++) {
      let r: FirstPacket;
      try {
        r = readFirstPacket(buf.subarray(0, i));
      } catch (err) {
        t.fail(`seed ${seed}, ${i} bytes: threw ${String(err)}`);
        return;
      }
      if ('size' in r && r.size > i) t.fail(`seed ${seed}: size ${r.size} beyond the ${i} bytes given`);
      if (first === undefined && r.kind !== 'incomplete') first = r;
      else if (first !== undefined && r.kind !== first.kind) {
        t.fail(`seed ${seed}: decided ${first.kind}, then ${r.kind} at ${i} bytes`);
        return;
      } else if (first !== undefined && first.kind !== 'invalid' && JSON.stringify(r) !== JSON.stringify(first)) {
        t.fail(`seed ${seed}: ${JSON.stringify(first)} became ${JSON.stringify(r)} at ${i} bytes`);
        return;
      }
    }
    if (first) decided++;
  }
  t.ok(decided > 4000, `most random inputs get decided (${decided})`);
});
