// Cancel keys that carry the issuing member's tag, and the forwarder's rule for them: a key of
// another member goes to that member; a key bearing this member's own tag is never forwarded
// (so a request never travels more than one hop between instances).
import t from 'tap';
import { FakeClock } from '../../src/clock';
import { FanoutBudget, forwardCancel, type CancelDeps, type ListenerPeers } from '../../src/proxy/cancel-forwarder';
import { CancelRegistry } from '../../src/proxy/cancel-registry';
import { NO_TAG, memberTag, tagOf, taggedProcessId } from '../../src/proxy/cancel-tag';
import { issueKey } from '../../src/proxy/proxy-auth';
import { cancelKey } from '../../src/protocol/cancel';
import { cancelRecord, peerAddresses } from '../../src/control/coordination/cancel-addresses';
import type { ClusterView, MemberRecord } from '../../src/control/coordination/cluster-keys';

t.test('a tagged process id is a positive Int32 that gives its tag back', async (t) => {
  for (const tag of [1, 2, 127, 128, 254, 255]) {
    for (let i = 0; i < 200; i++) {
      const pid = taggedProcessId(tag);
      t.ok(Number.isInteger(pid) && pid > 0 && pid <= 0x7fffffff, `positive Int32 (${pid})`);
      if (tagOf(pid) !== tag) t.fail(`tag ${tag} read back as ${tagOf(pid)} from ${pid}`);
      // A process id read with readInt32BE or readUInt32BE is the same four bytes.
      if (tagOf(pid | 0) !== tag) t.fail('signed reading');
    }
  }
  t.throws(() => taggedProcessId(0));
  t.throws(() => taggedProcessId(256));
});

t.test("a server's own process id and an id with the sign bit carry no tag", async (t) => {
  for (const pid of [1, 4242, 4194304, 0x7fffff]) t.equal(tagOf(pid), NO_TAG, String(pid));
  t.equal(tagOf(0x80000000), NO_TAG);
  t.equal(tagOf(-1), NO_TAG);
});

t.test('a member tag is 1..255 and the same for the same name', async (t) => {
  for (const name of ['a', 'b', 'c', 'pgw-eu-1', 'ü']) {
    const tag = memberTag(name);
    t.ok(tag >= 1 && tag <= 255, `${name}: ${tag}`);
    t.equal(memberTag(name), tag);
  }
});

t.test('issueKey puts the tag in the process id only when given one; the key is free in the registry', async (t) => {
  const cancels = new CancelRegistry();
  const tagged = issueKey(cancels, 77);
  t.equal(tagOf(tagged.processId), 77);
  cancels.add(cancelKey(tagged.processId, tagged.secretKey), { backend: 'pg1', host: 'h', port: 1 });
  t.not(cancelKey(tagged.processId, tagged.secretKey), ((k) => cancelKey(k.processId, k.secretKey))(issueKey(cancels, 77)));
  const plain = issueKey(cancels);
  t.ok(plain.processId > 0 && plain.processId <= 0x7fffffff);
});

function rig(peers: ListenerPeers | undefined, rate = 50) {
  const sent: string[] = [];
  const deps: CancelDeps = {
    cancels: new CancelRegistry(),
    cancelTargets: () => [
      { backend: 'pg1', host: 'pg1', port: 5432 },
      { backend: 'pg2', host: 'pg2', port: 5432 },
    ],
    sendCancel: async (host, port) => {
      sent.push(`${host}:${port}`);
      return true;
    },
    fanout: new FanoutBudget(rate, rate, new FakeClock()),
    ...(peers && { peers }),
  };
  return { deps, sent };
}

const OWN = 10;
const OTHER = 20;
const peers: ListenerPeers = {
  ownTag: OWN,
  // What the member records say: b (tag 20) at 127.0.0.3:6001; a member sharing our tag at .4.
  addressesFor: (tag) => (tag === OTHER ? [{ host: '127.0.0.3', port: 6001 }] : tag === OWN ? [{ host: '127.0.0.4', port: 6001 }] : []),
};

t.test("an unknown key with another member's tag is forwarded to that member only", async (t) => {
  const { deps, sent } = rig(peers);
  t.equal(await forwardCancel(taggedProcessId(OTHER), 99, deps), 'forwarded');
  t.same(sent, ['127.0.0.3:6001']);
});

t.test('an unknown key with our own tag is not forwarded (no loop): fanned out as before', async (t) => {
  const { deps, sent } = rig(peers);
  t.equal(await forwardCancel(taggedProcessId(OWN), 99, deps), 'fanned-out');
  t.same(sent, ['pg1:5432', 'pg2:5432']);
});

t.test('a known key goes to its server whatever its tag', async (t) => {
  const { deps, sent } = rig(peers);
  const pid = taggedProcessId(OTHER);
  deps.cancels.add(cancelKey(pid, 5), { backend: 'pg2', host: 'pg2', port: 5432, serverKey: { processId: 4242, secretKey: 7 } });
  t.equal(await forwardCancel(pid, 5, deps), 'exact');
  t.same(sent, ['pg2:5432']);
});

t.test('no member publishes that tag, no tag, or no coordination: fanned out as before', async (t) => {
  for (const [p, pid] of [
    [peers, taggedProcessId(30)],
    [peers, 4242],
    [undefined, taggedProcessId(OTHER)],
  ] as const) {
    const { deps, sent } = rig(p);
    t.equal(await forwardCancel(pid, 1, deps), 'fanned-out');
    t.same(sent, ['pg1:5432', 'pg2:5432']);
  }
});

t.test('a forward spends the unknown-key budget', async (t) => {
  const { deps, sent } = rig(peers, 1);
  t.equal(await forwardCancel(taggedProcessId(OTHER), 1, deps), 'forwarded');
  t.equal(await forwardCancel(taggedProcessId(OTHER), 2, deps), 'dropped');
  t.same(sent, ['127.0.0.3:6001']);
});

t.test('member records: bind address, advertise for a wildcard, other members with the tag only', async (t) => {
  const listeners = [
    { name: 'rw', host: '10.0.0.5', port: 6432 },
    { name: 'ro', host: '0.0.0.0', port: 6433 },
    { name: 'any', host: '::', port: 6434 },
  ] as never;
  t.same(cancelRecord(7, listeners, undefined), { tag: 7, listeners: { rw: { host: '10.0.0.5', port: 6432 } } });
  t.same(cancelRecord(7, listeners, 'pgw1.example').listeners, {
    rw: { host: '10.0.0.5', port: 6432 },
    ro: { host: 'pgw1.example', port: 6433 },
    any: { host: 'pgw1.example', port: 6434 },
  });
  const rec = (name: string, cancel: unknown): [string, MemberRecord] => [name, { name, ackEpoch: 1, at: 1, cancel } as MemberRecord];
  const view = {
    members: new Map([
      rec('a', { tag: 7, listeners: { rw: { host: '10.0.0.5', port: 6432 } } }),
      rec('b', { tag: 7, listeners: { rw: { host: '10.0.0.6', port: 6432 } } }),
      rec('c', { tag: 8, listeners: { rw: { host: '10.0.0.7', port: 6432 } } }),
      rec('d', { tag: 7, listeners: { rw: { host: 42, port: 6432 } } }),
      rec('e', 'garbage'),
      rec('f', undefined),
    ]),
  } as unknown as ClusterView;
  t.same(peerAddresses(view, 'a', 7, 'rw'), [{ host: '10.0.0.6', port: 6432 }], 'not itself, not c, not a malformed record');
  t.same(peerAddresses(view, 'a', 7, 'ro'), []);
  t.same(peerAddresses(undefined, 'a', 7, 'rw'), []);
});
