import t from 'tap';
import { cancelKey, cancelRequest } from '../../src/protocol/cancel';
import { readFirstPacket } from '../../src/protocol/first-packet';
import { CancelKeyRangeError } from '../../src/errors';

t.test('CancelRequest layout: length 16, code 80877102, process id, secret key', async (t) => {
  const p = cancelRequest(4242, 0x1234abcd);
  t.equal(p.length, 16);
  t.equal(p.readInt32BE(0), 16);
  t.equal(p.readInt32BE(4), 80877102);
  t.equal(p.readInt32BE(8), 4242);
  t.equal(p.readUInt32BE(12), 0x1234abcd);
});

t.test('round-trips through readFirstPacket, signed or unsigned', async (t) => {
  for (const [pid, key] of [[1, 0], [4242, 0x1234abcd], [0x7fffffff, 0xffffffff], [99, -1], [5, -0x80000000]]) {
    const r = readFirstPacket(cancelRequest(pid, key));
    if (r.kind !== 'cancel') throw new Error(JSON.stringify(r));
    t.equal(r.size, 16);
    t.equal(r.processId, pid);
    t.equal(r.secretKey, key | 0, 'read as the protocol Int32');
    t.equal(cancelKey(r.processId, r.secretKey), cancelKey(pid, key), 'same map key either way');
    t.same(cancelRequest(r.processId, r.secretKey), cancelRequest(pid, key), 'same bytes either way');
  }
});

t.test('cancel keys identify the pair', async (t) => {
  t.equal(cancelKey(12345, 0xdeadbeef), '12345:3735928559');
  t.equal(cancelKey(12345, 0xdeadbeef | 0), '12345:3735928559', 'negative Int32 reading of the same key');
  t.not(cancelKey(1, 23), cancelKey(12, 3));
  t.not(cancelKey(1, 2), cancelKey(2, 1));
});

t.test('numbers that are not 32-bit integers are refused with a code', async (t) => {
  for (const bad of [NaN, Infinity, 1.5, 2 ** 32, -(2 ** 31) - 1]) {
    t.throws(() => cancelRequest(1, bad), CancelKeyRangeError, String(bad));
    t.throws(() => cancelKey(bad, 1), { name: 'CancelKeyRangeError', code: 'PGW_CANCEL_KEY_RANGE' }, String(bad));
  }
});
