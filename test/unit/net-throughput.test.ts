import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { NetThroughput, parseProcNetDev } from '../../src/host/net-throughput';

const dev = (lo: [number, number], eth: [number, number]) => `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: ${lo[0]}   10    0    0    0     0          0         0  ${lo[1]}   10    0    0    0     0       0          0
  eth0: ${eth[0]}  200    0    0    0     0          0         0  ${eth[1]}  150    0    0    0     0       0          0
`;

t.test('parses rx and tx bytes per interface', async (t) => {
  const m = parseProcNetDev(dev([100, 100], [5000, 7000]));
  t.same([...m.entries()], [['lo', { rx: 100, tx: 100 }], ['eth0', { rx: 5000, tx: 7000 }]]);
  t.same([...parseProcNetDev('garbage\n\nnot: a line\n').entries()], []);
});

t.test('rates are deltas per second between two readings', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgw-net-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'dev');
  const n = new NetThroughput(file);
  writeFileSync(file, dev([0, 0], [1000, 2000]));
  t.same(await n.read(10_000), [], 'first reading: no rate yet');
  writeFileSync(file, dev([500, 500], [3000, 2000]));
  t.same(await n.read(12_000), [
    { iface: 'lo', rxBytesPerSec: 250, txBytesPerSec: 250 },
    { iface: 'eth0', rxBytesPerSec: 1000, txBytesPerSec: 0 },
  ]);
  t.same(await new NetThroughput(path.join(dir, 'missing')).read(), [], 'unreadable: no rates, no throw');
});
