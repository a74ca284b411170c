// Starts a real Patroni cluster (three nodes on one etcd member) for one test and destroys it
// when the test ends.
import type { Test } from 'tap';
import { findPatroni, findPgBinDir } from '../../src/harness/binaries';
import { PatroniCluster, type PatroniClusterOptions } from '../../src/harness/patroni';
import { etcdAvailable } from './etcd';

/**
 * Why Patroni tests cannot run here (patroni, patronictl, etcd or the PostgreSQL server
 * programs are missing), or undefined when they can: `const skip = patroniAvailable(); if (skip) …`.
 */
export function patroniAvailable(): string | undefined {
  try {
    findPatroni();
    findPgBinDir();
  } catch (err) {
    return (err as Error).message;
  }
  return etcdAvailable();
}

/**
 * Three Patroni nodes (see PatroniCluster.create), destroyed in t.teardown.
 * Set PGWARDEN_CLUSTER_LOG=1 to see the harness's progress lines as TAP comments.
 */
export async function startPatroni(t: Test, opts: PatroniClusterOptions = {}): Promise<PatroniCluster> {
  const log = opts.log ?? (process.env.PGWARDEN_CLUSTER_LOG ? (line: string) => t.comment(line) : undefined);
  const cluster = await PatroniCluster.create({ ...opts, log });
  t.teardown(() => cluster.destroy());
  return cluster;
}
