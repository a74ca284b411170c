// Starts a real PostgreSQL cluster for one test and destroys it when the test ends.
import type { Test } from 'tap';
import { PgCluster, type ClusterOptions } from '../../src/harness/cluster';

/**
 * A primary and its streaming replicas (see PgCluster.create), destroyed in t.teardown.
 * Set PGWARDEN_CLUSTER_LOG=1 to see the harness's progress lines as TAP comments.
 */
export async function startCluster(t: Test, opts: ClusterOptions = {}): Promise<PgCluster> {
  const log = opts.log ?? (process.env.PGWARDEN_CLUSTER_LOG ? (line: string) => t.comment(line) : undefined);
  const cluster = await PgCluster.create({ ...opts, log });
  t.teardown(() => cluster.destroy());
  return cluster;
}
