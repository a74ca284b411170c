// auth.mode proxy with several instances (issue: "with several instances, the key can carry an
// instance id"): the key a client gets through instance a carries a's tag, so a CancelRequest
// for it that reaches instance b — another connection, maybe through a load balancer — is
// forwarded to a, which cancels the exact query (57014). A key with a's tag that a no longer
// knows is forwarded once and fanned out at a, never sent back: one hop.
import net from 'node:net';
import t from 'tap';
import { cancelRequest } from '../../src/protocol/cancel';
import { memberTag, tagOf, taggedProcessId } from '../../src/proxy/cancel-tag';
import type { RunningProxy } from '../helpers/proxy';
import { AUTH_YAML, SCRAM, login, prepareProxyAuth } from '../helpers/auth-cluster';
import { NAMES, describeTrio, startTrio, waitForClusterPrimary } from '../helpers/coordinated';
import { etcdAvailable } from '../helpers/etcd';
import { waitFor } from '../helpers/proxy';

const skip = etcdAvailable();
if (skip) t.comment(`skipped: ${skip}`);

/** Sends a CancelRequest to a listener and waits for pgwarden to close (it has delivered it then). */
function sendCancelTo(port: number, processId: number, secretKey: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => s.end(cancelRequest(processId, secretKey)));
    s.on('close', () => resolve());
    s.on('error', reject);
  });
}

/** The outcomes of the CancelRequests an instance handled, in order. */
function cancelOutcomes(p: RunningProxy): string[] {
  const seen: string[] = [];
  p.app.bus.on('cancel.forwarded', (e) => seen.push(e.outcome));
  return seen;
}

t.test("a cancel for a key of instance a, sent to instance b, cancels a's query", { skip }, async (t) => {
  const trio = await startTrio(t, { extra: AUTH_YAML, prepare: (cluster) => prepareProxyAuth(t, cluster) });
  const { cluster, instances } = trio;
  const primary = cluster.nodes[0]!;
  await waitForClusterPrimary(trio, primary);
  // Every instance has read every member's record (lease granted, record written, watch seen).
  await waitFor('every instance sees every member alive', () => NAMES.every((n) => instances[n].app.status().coordination?.members.every((m) => m.alive) === true), 30_000).catch(
    async (e: Error) => {
      throw new Error(`${e.message}\n${await describeTrio(trio)}`);
    },
  );
  const record = JSON.parse((await trio.kv.get('/pgwarden/test/members/a').string())!);
  t.match(record.cancel, { tag: memberTag('a'), listeners: { rw: { host: '127.0.0.1', port: instances.a.rwPort } } }, "a publishes its tag and its listeners' addresses");

  const atA = cancelOutcomes(instances.a);
  const atB = cancelOutcomes(instances.b);
  const victim = await login(instances.a.rwPort, SCRAM.user, SCRAM.password);
  t.teardown(() => victim.end().catch(() => undefined));
  const { processID, secretKey } = victim as unknown as { processID: number; secretKey: number };
  t.equal(tagOf(processID), memberTag('a'), "the key the client was given carries a's tag");

  const running = victim.query('SELECT pg_sleep(30)').then(
    () => 'finished',
    (e: { code?: string }) => e.code,
  );
  await waitFor('the sleep is running', async () => (await cluster.query(primary, "SELECT count(*)::int AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'"))[0].n === 1);
  await sendCancelTo(instances.b.rwPort, processID, secretKey);
  let outcome: string | undefined;
  void running.then((o) => (outcome = o));
  await waitFor('the query ends', () => outcome !== undefined, 20_000);
  t.equal(outcome, '57014', 'canceling statement due to user request');
  await waitFor('b counted the cancel', () => atB.length === 1);
  t.same(atB, ['forwarded'], 'b forwarded it (it does not know the key; the tag is a member\'s)');
  await waitFor('a counted the cancel', () => atA.length === 1);
  t.same(atA, ['exact'], 'a sent it to the exact server with its key');
  t.equal((await victim.query('SELECT 1 AS one')).rows[0].one, 1, 'the session goes on after the cancel');

  // A key with a's tag that a does not know (a session that ended): b forwards it, a fans it out.
  await sendCancelTo(instances.b.rwPort, taggedProcessId(memberTag('a')), 12345);
  await waitFor('a handled the unknown key', () => atA.length === 2);
  t.same(atB, ['forwarded', 'forwarded']);
  t.same(atA, ['exact', 'fanned-out'], 'a does not send a key bearing its own tag on: one hop');
});
