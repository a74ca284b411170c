// The etcd harness against real etcd: three members on two loopback addresses form one
// cluster, keep quorum with one member killed, take it back after a restart, and leave no
// process or file behind.
import { existsSync } from 'node:fs';
import { Etcd3 } from 'etcd3';
import t from 'tap';
import { processAlive } from '../../src/harness/run';
import { etcdAvailable, startEtcd } from '../helpers/etcd';

const DEADLINE_MS = 20_000;

const noEtcd = etcdAvailable();
if (noEtcd) console.log(`# skipping the etcd harness test: ${noEtcd}`);

// A client bound to the given endpoints only. Each call has its own deadline, so that a call
// made during an election fails and is retried instead of hanging.
function clientFor(hosts: string[]): Etcd3 {
  return new Etcd3({ hosts, dialTimeout: 2000, defaultCallOptions: () => ({ deadline: Date.now() + 2000 }) });
}

// Repeats attempt() until it resolves or the deadline passes (then rethrows its last error).
async function retryUntil<T>(what: string, attempt: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (Date.now() >= deadline) throw new Error(`${what}: still failing after ${DEADLINE_MS} ms: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function withClient<T>(hosts: string[], use: (client: Etcd3) => Promise<T>): Promise<T> {
  const client = clientFor(hosts);
  try {
    return await use(client);
  } finally {
    client.close();
  }
}

t.test('a 3-member etcd cluster on two loopback addresses', { skip: noEtcd }, async (t) => {
  const cluster = await startEtcd(t, { clientAddresses: ['127.0.0.1', '127.0.0.2'] });
  const pids = new Set<number>();
  const notePids = (): void => cluster.members.forEach((m) => pids.add(m.pid));
  notePids();

  t.same(cluster.members.map((m) => m.name), ['e1', 'e2', 'e3']);
  for (const m of cluster.members) {
    for (const port of [m.clientPort, m.peerPort]) t.ok(port >= 20000 && port < 32000, `${m.name} port ${port} is below the ephemeral range`);
  }
  t.same(cluster.endpoints('127.0.0.2'), cluster.members.map((m) => `http://127.0.0.2:${m.clientPort}`));
  t.throws(() => cluster.endpoints('127.0.0.3'), { code: 'PGW_ETCD_OPTIONS' }, 'an address the members do not listen on');

  await withClient([cluster.endpoints()[0]!], async (c) => {
    await c.put('harness/first').value('written through e1');
  });
  const viaE3 = await withClient([cluster.endpoints('127.0.0.2')[2]!], (c) => c.get('harness/first').string());
  t.equal(viaE3, 'written through e1', 'read through e3 on 127.0.0.2');

  await cluster.killMember(0);
  t.notOk(processAlive(cluster.members[0]!.pid), 'e1 is gone after killMember');
  const [, e2, e3] = cluster.endpoints();
  await retryUntil('a write through e2 and e3 with e1 killed', () =>
    withClient([e2!, e3!], async (c) => {
      await c.put('harness/quorum').value('two of three');
    }),
  );
  t.pass('e2 and e3 still take a write: two of three are a quorum');

  await cluster.startMember(0);
  notePids();
  t.ok(processAlive(cluster.members[0]!.pid), 'e1 runs again');
  const caughtUp = await retryUntil('a read through the restarted e1', () =>
    withClient([cluster.endpoints('127.0.0.2')[0]!], (c) => c.get('harness/quorum').string()),
  );
  t.equal(caughtUp, 'two of three', 'the restarted e1 serves the write it missed');

  await cluster.stopMember(2);
  t.notOk(processAlive(cluster.members[2]!.pid), 'e3 is gone after stopMember');

  await cluster.destroy();
  for (const pid of pids) t.notOk(processAlive(pid), `member pid ${pid} is gone after destroy()`);
  t.notOk(existsSync(cluster.baseDir), 'the base directory is removed');
  await cluster.destroy(); // idempotent
});
