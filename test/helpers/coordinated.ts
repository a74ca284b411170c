// Three pgwarden instances (a, b, c) in this process, coordinated through a real 3-member etcd,
// in front of a real primary and two streaming replicas. Each instance reaches the servers
// through its own loopback address (a: 127.0.0.2, b: 127.0.0.3, c: 127.0.0.4; the test itself
// and the harness use 127.0.0.1), so one instance can be cut from one server with an iptables
// rule on that destination address (root only) while the others and the test still reach it.
import { spawnSync } from 'node:child_process';
import type { Test } from 'tap';
import { Etcd3 } from 'etcd3';
import type { PgCluster, PgNode } from '../../src/harness/cluster';
import type { EtcdCluster } from '../../src/harness/etcd';
import { isRoot } from '../../src/harness/run';
import { startCluster } from './cluster';
import { startEtcd } from './etcd';
import { CHECK_USER, healthConfig, startProxy, waitFor, type RunningProxy } from './proxy';

export const NAMES = ['a', 'b', 'c'] as const;
export const ADDRESS: Record<(typeof NAMES)[number], string> = { a: '127.0.0.2', b: '127.0.0.3', c: '127.0.0.4' };
const GRANT_PROMOTE = 'grant execute on function pg_promote(boolean, integer) to pgwarden';
export const PREFIX = '/pgwarden/test';

export interface Trio {
  cluster: PgCluster;
  etcd: EtcdCluster;
  instances: Record<(typeof NAMES)[number], RunningProxy>;
  /** A client of the test's own for reading what the instances wrote (closed in teardown). */
  kv: Etcd3;
  /** The cluster state as stored in etcd. */
  state(): Promise<Record<string, any> | undefined>;
}

export interface TrioOptions {
  failover?: string;
  extra?: string;
  coordination?: string;
  /** Start only these instances (the others may be started later with startInstance). */
  only?: readonly (typeof NAMES)[number][];
  /** Runs on the started cluster before any instance starts (roles, pg_hba.conf …). */
  prepare?: (cluster: PgCluster) => Promise<void>;
}

export async function startCluster3(t: Test): Promise<PgCluster> {
  const cluster = await startCluster(t, { replicas: 2, checkUser: CHECK_USER, settings: { listen_addresses: ['127.0.0.1', ...Object.values(ADDRESS)].join(',') } });
  await cluster.query(cluster.primary, GRANT_PROMOTE);
  await cluster.query(cluster.primary, 'create table writes (id bigint, via text)');
  await cluster.waitForReplication();
  return cluster;
}

export async function startTrio(t: Test, opts: TrioOptions = {}): Promise<Trio> {
  // etcd's members also listen on each instance's address, so one instance can be cut from etcd.
  const etcd = await startEtcd(t, { members: 3, clientAddresses: ['127.0.0.1', ...Object.values(ADDRESS)] });
  const cluster = await startCluster3(t);
  await opts.prepare?.(cluster);
  const kv = new Etcd3({ hosts: etcd.endpoints() });
  t.teardown(() => kv.close());
  const instances = {} as Trio['instances'];
  for (const name of opts.only ?? NAMES) instances[name] = await startInstance(t, name, cluster, etcd, opts);
  return {
    cluster,
    etcd,
    instances,
    kv,
    state: async () => {
      const raw = await kv.get(`${PREFIX}/state`).string();
      return raw === null ? undefined : JSON.parse(raw);
    },
  };
}

/** The same instance's config as a file, for running it as its own process (bin: dist/cli.js). */
export function instanceYaml(name: (typeof NAMES)[number], cluster: PgCluster, etcd: EtcdCluster, ports: { rw: number; ro: number; admin: number }, failover = '  queue_timeout: 20s\n  mode: promote\n  promote_after: 1s'): string {
  return `listeners:
  - { name: rw, bind: "127.0.0.1:${ports.rw}", route: primary }
  - { name: ro, bind: "127.0.0.1:${ports.ro}", route: replica }
backends:
${cluster.nodes.map((n) => `  - { name: ${n.name}, host: ${ADDRESS[name]}, port: ${n.port} }`).join('\n')}
health:
${healthConfig()}
failover:
${failover}
admin:
  bind: 127.0.0.1:${ports.admin}
coordination:
  name: ${name}
  members: [a, b, c]
  ttl: 3s
  etcd:
    endpoints: [${etcd.endpoints(ADDRESS[name]).join(', ')}]
    prefix: ${PREFIX}
    timeout: 500ms
`;
}

export function startInstance(t: Test, name: (typeof NAMES)[number], cluster: PgCluster, etcd: EtcdCluster, opts: TrioOptions = {}): Promise<RunningProxy> {
  return startProxy(t, cluster, {
    health: healthConfig(),
    failover: opts.failover ?? '  queue_timeout: 20s\n  mode: promote\n  promote_after: 1s',
    backends: (nodes) => nodes.map((n) => `  - { name: ${n.name}, host: ${ADDRESS[name]}, port: ${n.port} }`).join('\n'),
    extra: `coordination:
  name: ${name}
  members: [a, b, c]
  ttl: ${opts.coordination?.match(/ttl: (\S+)/)?.[1] ?? '3s'}
  etcd:
    endpoints: [${etcd.endpoints(ADDRESS[name]).join(', ')}]
    prefix: ${PREFIX}
    timeout: 500ms
${opts.extra ?? ''}`,
  });
}

/** Wait until every running instance routes writes to `node` (its checks agree with the cluster). */
export async function waitForClusterPrimary(trio: Trio, node: PgNode, timeoutMs = 30_000): Promise<void> {
  for (const [name, p] of Object.entries(trio.instances)) {
    try {
      await waitFor(`instance ${name} routes writes to ${node.name}`, () => p.app.topology.primary()?.name === node.name, timeoutMs);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${await describeTrio(trio)}`);
    }
  }
}

/** What each instance sees and what etcd holds: for the message of a wait that timed out. */
export async function describeTrio(trio: Trio): Promise<string> {
  const lines = [`etcd state: ${JSON.stringify(await trio.state().catch((e: Error) => `unreadable: ${e.message}`))}`];
  for (const [name, p] of Object.entries(trio.instances)) {
    const s = p.app.status();
    const backends = s.backends.map((b) => `${b.name}=${b.state}/${b.role ?? '?'}${b.fenced ? '/fenced' : ''}`).join(' ');
    const c = s.coordination;
    lines.push(`${name}: primary ${p.app.topology.primary()?.name ?? 'none'}; ${backends}; coordination leader=${c?.leader ?? '-'} epoch=${c?.epoch ?? '-'} primary=${c?.primary ?? '-'} etcd=${c?.etcd.reachable ? 'reachable' : `unreachable (${c?.etcd.lastError ?? ''})`}`);
    for (const e of p.app.timeline.recent().slice(-8)) lines.push(`  ${e.time} ${e.event}: ${e.message}`);
  }
  return lines.join('\n');
}

/** Why tests that cut one instance from one server cannot run here (iptables, root), or undefined. */
export function cutUnavailableReason(): string | undefined {
  if (!isRoot()) return 'needs root (iptables)';
  if (spawnSync('iptables', ['-S', 'OUTPUT'], { stdio: 'ignore' }).status !== 0) return 'iptables is not usable here';
  return undefined;
}

/**
 * Cut the instance that uses `address` from the server on `port`: its packets are rejected with
 * a TCP reset (the server looks down to it, and only to it). Removed in t.teardown.
 */
export function cut(t: Test, address: string, port: number): () => void {
  const rule = ['OUTPUT', '-p', 'tcp', '-d', address, '--dport', String(port), '-j', 'REJECT', '--reject-with', 'tcp-reset'];
  const r = spawnSync('iptables', ['-I', ...rule], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`iptables -I failed: ${r.stderr}`);
  let removed = false;
  const undo = () => {
    if (removed) return;
    removed = true;
    spawnSync('iptables', ['-D', ...rule], { stdio: 'ignore' });
  };
  t.teardown(undo);
  process.once('exit', undo);
  return undo;
}
