import t from 'tap';
import { Parser } from 'pg-protocol/dist/parser';
import type { BackendKeyDataMessage, BackendMessage, ReadyForQueryMessage } from 'pg-protocol/dist/messages';
import { StartupWatcher, MAX_STARTUP_BACKEND_MESSAGE } from '../../src/protocol/startup-watcher';
import { errorResponse } from '../../src/protocol/error-response';

// --- tiny local builders for backend messages ("Message Formats") ---

function msg(type: string, ...parts: Array<Buffer | string | number>): Buffer {
  const body = Buffer.concat(
    parts.map((p) => {
      if (typeof p === 'string') return Buffer.from(p + '\0', 'utf8'); // C string
      if (typeof p === 'number') {
        const b = Buffer.alloc(4);
        b.writeUInt32BE(p >>> 0, 0);
        return b;
      }
      return p;
    }),
  );
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}

const auth = (code: number, ...rest: Array<Buffer | string | number>) => msg('R', code, ...rest);
const param = (name: string, value: string) => msg('S', name, value);
const keyData = (pid: number, key: number) => msg('K', pid, key);
const ready = (status: string) => msg('Z', Buffer.from(status, 'latin1'));

/** What a PostgreSQL 15 server sends after a successful SCRAM login. */
const SUCCESSFUL_STARTUP = Buffer.concat([
  auth(10, 'SCRAM-SHA-256', Buffer.from([0])),
  auth(11, Buffer.from('r=abc,s=c2FsdA==,i=4096')),
  auth(12, Buffer.from('v=c2lnbmF0dXJl')),
  auth(0),
  param('application_name', 'billing'),
  param('client_encoding', 'UTF8'),
  param('DateStyle', 'ISO, MDY'),
  param('integer_datetimes', 'on'),
  param('IntervalStyle', 'postgres'),
  param('is_superuser', 'off'),
  param('server_encoding', 'UTF8'),
  param('server_version', '15.8'),
  param('session_authorization', 'app'),
  param('standard_conforming_strings', 'on'),
  param('TimeZone', 'Etc/UTC'),
  keyData(4242, 0xdeadbeef),
  ready('I'),
]);

interface Seen {
  keys: Array<[number, number]>;
  ready: string[];
  errors: Array<{ severity?: string; code?: string; message?: string }>;
}

function watch(chunks: Buffer[]): { seen: Seen; watcher: StartupWatcher } {
  const seen: Seen = { keys: [], ready: [], errors: [] };
  const watcher = new StartupWatcher({
    onBackendKeyData: (pid, key) => seen.keys.push([pid, key]),
    onReadyForQuery: (status) => seen.ready.push(status),
    onError: (fields) => seen.errors.push(fields),
  });
  for (const c of chunks) watcher.feed(c);
  return { seen, watcher };
}

function oneByteChunks(b: Buffer): Buffer[] {
  return Array.from({ length: b.length }, (_, i) => b.subarray(i, i + 1));
}

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

function randomChunks(b: Buffer, rand: () => number): Buffer[] {
  const out: Buffer[] = [];
  for (let pos = 0; pos < b.length; ) {
    const n = 1 + Math.floor(rand() * 40);
    out.push(b.subarray(pos, pos + n));
    pos += n;
  }
  return out;
}

const EXPECTED_OK: Seen = { keys: [[4242, 0xdeadbeef | 0]], ready: ['I'], errors: [] };

// --- tests ---

t.test('a successful startup reports the key and ReadyForQuery once, at every split point', async (t) => {
  // Bytes after the first ReadyForQuery belong to the piped session and are ignored.
  const after = Buffer.concat([ready('T'), keyData(1, 2), Buffer.from('garbage that is not a frame')]);
  const stream = Buffer.concat([SUCCESSFUL_STARTUP, after]);
  for (let i = 0; i <= stream.length; i++) {
    const { seen, watcher } = watch([stream.subarray(0, i), stream.subarray(i)]);
    if (JSON.stringify(seen) !== JSON.stringify(EXPECTED_OK) || !watcher.done) {
      t.fail(`split at ${i}: ${JSON.stringify(seen)} done=${watcher.done}`);
      return;
    }
  }
  t.pass(`all ${stream.length + 1} split points agree`);
});

t.test('one-byte chunks and random chunkings give the same result', async (t) => {
  const { seen, watcher } = watch(oneByteChunks(SUCCESSFUL_STARTUP));
  t.same(seen, EXPECTED_OK);
  t.equal(watcher.done, true);
  for (let seed = 1; seed <= 300; seed++) {
    const r = watch(randomChunks(SUCCESSFUL_STARTUP, prng(seed)));
    if (JSON.stringify(r.seen) !== JSON.stringify(EXPECTED_OK)) {
      t.fail(`seed ${seed}: ${JSON.stringify(r.seen)}`);
      return;
    }
  }
});

t.test('agrees with pg-protocol on the well-formed sequence', async (t) => {
  const fromLibrary: BackendMessage[] = [];
  new Parser().parse(SUCCESSFUL_STARTUP, (m) => fromLibrary.push(m));
  const k = fromLibrary.find((m) => m.name === 'backendKeyData') as BackendKeyDataMessage;
  const z = fromLibrary.find((m) => m.name === 'readyForQuery') as ReadyForQueryMessage;
  const { seen } = watch([SUCCESSFUL_STARTUP]);
  t.same(seen.keys, [[k.processID, k.secretKey]]);
  t.same(seen.ready, [z.status]);
});

t.test('nothing is reported and done stays false until ReadyForQuery is complete', async (t) => {
  const { seen, watcher } = watch([SUCCESSFUL_STARTUP.subarray(0, SUCCESSFUL_STARTUP.length - 1)]);
  t.same(seen.ready, []);
  t.same(seen.keys, EXPECTED_OK.keys, 'the key came earlier');
  t.equal(watcher.done, false);
  watcher.feed(SUCCESSFUL_STARTUP.subarray(-1));
  t.equal(watcher.done, true);
  t.same(seen.ready, ['I']);
});

t.test('an authentication failure during startup is reported (28P01) at every split point', async (t) => {
  const stream = Buffer.concat([
    auth(5, Buffer.from([1, 2, 3, 4])), // MD5 salt
    errorResponse({ severity: 'FATAL', code: '28P01', message: 'password authentication failed for user "app"' }),
  ]);
  const expected = { severity: 'FATAL', code: '28P01', message: 'password authentication failed for user "app"' };
  for (let i = 0; i <= stream.length; i++) {
    const { seen, watcher } = watch([stream.subarray(0, i), stream.subarray(i)]);
    if (JSON.stringify(seen.errors) !== JSON.stringify([expected]) || seen.ready.length || watcher.done) {
      t.fail(`split at ${i}: ${JSON.stringify(seen)} done=${watcher.done}`);
      return;
    }
  }
  t.pass(`all ${stream.length + 1} split points agree`);
  t.same(watch(oneByteChunks(stream)).seen.errors, [expected], 'one-byte chunks');
});

t.test('severity prefers the non-localized V field, falls back to S', async (t) => {
  const localized = msg('E', Buffer.from('SSCHWERWIEGEND\0VFATAL\0C3D000\0MDatenbank existiert nicht\0\0'));
  t.same(watch([localized]).seen.errors, [{ severity: 'FATAL', code: '3D000', message: 'Datenbank existiert nicht' }]);
  const old = msg('E', Buffer.from('SFATAL\0C53300\0Mtoo many\0\0'));
  t.same(watch([old]).seen.errors, [{ severity: 'FATAL', code: '53300', message: 'too many' }]);
});

t.test('GSSAPI/SSPI logins, notices and protocol negotiation are not errors', async (t) => {
  // pg-protocol's Parser throws on R 7/8/9; the watcher must not report these sessions as broken.
  const stream = Buffer.concat([
    msg('v', 0x00030000, 1, '_pq_.unknown_option'),
    auth(7),
    auth(8, Buffer.alloc(3000, 0x61)), // GSS continue token
    auth(9),
    auth(0),
    msg('N', Buffer.from('SWARNING\0VWARNING\0C01000\0Mbe careful\0\0')),
    param('server_version', '15.8'),
    keyData(7, 8),
    ready('I'),
  ]);
  const { seen } = watch(oneByteChunks(stream));
  t.same(seen, { keys: [[7, 8]], ready: ['I'], errors: [] });
});

t.test('a protocol 3.2 secret key longer than 4 bytes is not reported, startup still completes', async (t) => {
  const stream = Buffer.concat([auth(0), msg('K', 77, Buffer.alloc(32, 0xab)), ready('I')]);
  t.same(watch([stream]).seen, { keys: [], ready: ['I'], errors: [] });
});

t.test('malformed streams are reported once as 08P01 and never throw', async (t) => {
  const cases: Array<[string, Buffer, RegExp]> = [
    ['an HTTP server on the port', Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n'), /unexpected message type 'H'/],
    ['length below 4', Buffer.concat([auth(0), Buffer.from([0x53, 0, 0, 0, 2])]), /'S' \(0x53\).*length 2/],
    ['ReadyForQuery with a long body', Buffer.concat([auth(0), msg('Z', Buffer.from('IX'))]), /'Z'/],
    ['ReadyForQuery with an unknown status', Buffer.concat([auth(0), ready('X')]), /transaction status/],
    ['BackendKeyData too short', msg('K', 1, Buffer.alloc(3)), /'K'/],
    ['ErrorResponse without its final zero byte', msg('E', Buffer.from('SFATAL\0')), /truncated/],
    ['ErrorResponse value without NUL', msg('E', Buffer.from('SFATAL')), /truncated/],
    ['sign bit set in the length', Buffer.from([0x52, 0x80, 0, 0, 0]), /length 2147483648/],
  ];
  for (const [what, stream, reason] of cases) {
    for (const chunks of [[stream], oneByteChunks(stream)]) {
      let r: ReturnType<typeof watch>;
      try {
        r = watch([...chunks, SUCCESSFUL_STARTUP]); // later valid bytes must be ignored
      } catch (err) {
        t.fail(`${what}: threw ${String(err)}`);
        continue;
      }
      t.match(r.seen, { keys: [], ready: [], errors: [{ code: '08P01', message: reason }] }, what);
      t.equal(r.seen.errors.length, 1, `${what}: reported once`);
      t.equal(r.watcher.done, true, `${what}: stops watching`);
    }
  }
});

t.test('an absurd declared length is refused from the header, without buffering', async (t) => {
  const head = Buffer.from([0x45, 0, 0, 0, 0]);
  head.writeUInt32BE(MAX_STARTUP_BACKEND_MESSAGE + 1, 1);
  const { seen, watcher } = watch([head]);
  t.match(seen.errors, [{ code: '08P01' }]);
  t.equal(watcher.done, true);

  // A large message of a type that is only skipped is fine up to the limit.
  const big = Buffer.concat([auth(8, Buffer.alloc(MAX_STARTUP_BACKEND_MESSAGE - 8)), auth(0), ready('I')]);
  t.same(watch(randomChunks(big, prng(1))).seen, { keys: [], ready: ['I'], errors: [] });
});

t.test('random streams never throw, and nothing is reported after done', async (t) => {
  const types = 'RvENSKZ';
  let finished = 0;
  for (let seed = 1; seed <= 3000; seed++) {
    const rand = prng(seed);
    const parts: Buffer[] = [];
    const n = 1 + Math.floor(rand() * 8);
    for (let i = 0; i < n; i++) {
      if (rand() < 0.2) {
        parts.push(Buffer.from(Array.from({ length: Math.floor(rand() * 12) }, () => Math.floor(rand() * 256))));
      } else {
        const body = Buffer.from(Array.from({ length: Math.floor(rand() * 14) }, () => Math.floor(rand() * 256)));
        if (rand() < 0.5 && body.length) body[body.length - 1] = 0;
        parts.push(msg(types[Math.floor(rand() * types.length)], body));
      }
    }
    // Sometimes end with a valid startup tail, so "after done" is exercised, not only failures.
    if (rand() < 0.3) parts.push(auth(0), ready('I'), keyData(1, 1), ready('E'));
    const stream = Buffer.concat(parts);
    let events = 0;
    const watcher = new StartupWatcher({
      onBackendKeyData: () => void events++,
      onReadyForQuery: () => void events++,
      onError: () => void events++,
    });
    try {
      for (const c of randomChunks(stream, rand)) {
        const wasDone = watcher.done;
        const before = events;
        watcher.feed(c);
        if (wasDone && events !== before) {
          t.fail(`seed ${seed}: events after done`);
          return;
        }
      }
    } catch (err) {
      t.fail(`seed ${seed}: threw ${String(err)}`);
      return;
    }
    if (watcher.done) finished++;
  }
  t.ok(finished > 1000, `${finished} of 3000 streams ended the watch (ReadyForQuery or malformed)`);
});

t.test('feeding again from inside onReadyForQuery is ignored', async (t) => {
  let readyCount = 0;
  const watcher: StartupWatcher = new StartupWatcher({
    onBackendKeyData: () => undefined,
    onReadyForQuery: () => {
      readyCount++;
      watcher.feed(ready('T'));
    },
    onError: () => t.fail('no error expected'),
  });
  watcher.feed(Buffer.concat([auth(0), ready('I')]));
  t.equal(readyCount, 1);
});
