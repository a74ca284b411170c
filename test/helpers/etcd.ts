// Starts a real etcd cluster for one test and destroys it when the test ends.
import type { Test } from 'tap';
import { findEtcd } from '../../src/harness/binaries';
import { EtcdCluster, type EtcdClusterOptions } from '../../src/harness/etcd';

/**
 * Why etcd tests cannot run here (etcd or etcdctl is not installed), or undefined when they can.
 * Despite the name, undefined means available: `const skip = etcdAvailable(); if (skip) …`.
 */
export function etcdAvailable(): string | undefined {
  try {
    findEtcd();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * N etcd members (see EtcdCluster.create), destroyed in t.teardown.
 * Set PGWARDEN_CLUSTER_LOG=1 to see the harness's progress lines as TAP comments.
 */
export async function startEtcd(t: Test, opts: EtcdClusterOptions = {}): Promise<EtcdCluster> {
  const log = opts.log ?? (process.env.PGWARDEN_CLUSTER_LOG ? (line: string) => t.comment(line) : undefined);
  const cluster = await EtcdCluster.create({ ...opts, log });
  t.teardown(() => cluster.destroy());
  return cluster;
}
