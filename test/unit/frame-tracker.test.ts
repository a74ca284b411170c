import t from 'tap';
import { FrameTracker } from '../../src/protocol/frame-tracker';
import { framed as msg } from '../helpers/framed';

const serverStream = Buffer.concat([
  msg('T', Buffer.alloc(20)),
  msg('D', Buffer.alloc(300)),
  msg('D', Buffer.alloc(1)),
  msg('C', 'SELECT 2\0'),
  msg('Z', 'T'),
  msg('C', 'COMMIT\0'),
  msg('Z', 'I'),
]);

t.test('server side: counts ReadyForQuery and keeps the last status at every split point', async (t) => {
  for (let cut = 0; cut <= serverStream.length; cut++) {
    const f = new FrameTracker('server');
    f.feed(serverStream.subarray(0, cut));
    f.feed(serverStream.subarray(cut));
    t.equal(f.count, 2, `count at cut ${cut}`);
    t.equal(String.fromCharCode(f.status), 'I');
    t.ok(f.atBoundary);
  }
});

t.test('server side: one byte at a time; boundary only between messages', async (t) => {
  const f = new FrameTracker('server');
  const boundaries: number[] = [];
  for (let i = 0; i < serverStream.length; i++) {
    f.feed(serverStream.subarray(i, i + 1));
    if (f.atBoundary) boundaries.push(i + 1);
  }
  let pos = 0;
  const expected: number[] = [];
  for (const len of [25, 305, 6, 14, 6, 12, 6]) expected.push((pos += len));
  t.same(boundaries, expected);
  t.equal(String.fromCharCode(f.status), 'I');
});

t.test('status T between statements of a transaction', async (t) => {
  const f = new FrameTracker('server');
  f.feed(Buffer.concat([msg('C', 'BEGIN\0'), msg('Z', 'T')]));
  t.equal(String.fromCharCode(f.status), 'T');
  t.equal(f.count, 1);
});

t.test('client side: counts Query, Sync and FunctionCall only', async (t) => {
  const stream = Buffer.concat([msg('Q', 'select 1\0'), msg('P', Buffer.alloc(30)), msg('B', Buffer.alloc(12)), msg('E', Buffer.alloc(5)), msg('S'), msg('d', Buffer.alloc(100)), msg('X')]);
  for (let cut = 0; cut <= stream.length; cut++) {
    const f = new FrameTracker('client');
    f.feed(stream.subarray(0, cut));
    f.feed(stream.subarray(cut));
    t.equal(f.count, 2);
    t.ok(f.atBoundary);
  }
});

t.test('a length below 4 breaks tracking for good', async (t) => {
  const f = new FrameTracker('server');
  f.feed(Buffer.from([0x5a, 0, 0, 0, 2]));
  t.equal(f.broken, true);
  t.equal(f.atBoundary, false);
  f.feed(msg('Z', 'I'));
  t.equal(f.count, 0);
});

// Found by test/unit/fuzz-frame-tracker.test.ts: the length word was read unsigned, so a
// negative one (top bit set) looked like a 2-4 GB message instead of a broken stream.
t.test('a negative length breaks tracking for good, at every split of its header', async (t) => {
  const bad = Buffer.from([0x44, 0xff, 0xff, 0xff, 0xff]);
  for (let cut = 0; cut <= bad.length; cut++) {
    const f = new FrameTracker('client');
    f.feed(bad.subarray(0, cut));
    f.feed(bad.subarray(cut));
    t.equal(f.broken, true, `cut at ${cut}`);
  }
  const f = new FrameTracker('server');
  f.feed(Buffer.from([0x5a, 0x80, 0, 0, 5, 0x49]));
  t.equal(f.broken, true, '-2147483643 is negative too');
  f.feed(msg('Z', 'I'));
  t.equal(f.count, 0);
  const largest = new FrameTracker('server');
  largest.feed(Buffer.from([0x44, 0x7f, 0xff, 0xff, 0xff]));
  t.equal(largest.broken, false, 'the largest positive Int32 is a (huge) message, not nonsense');
});
