// Part of the cluster harness for the demo, tests and benchmarks (see cluster.ts); not the proxy.
// One statement on one server as the superuser postgres, for the PostgreSQL and Patroni harnesses.
import { Client, type QueryResult } from 'pg';
import type { PgNode } from './cluster-options';

/** Runs one statement as superuser postgres on database postgres over TCP; always closes its client. */
export async function queryNode(node: PgNode, sql: string, params?: unknown[]): Promise<any[]> {
  const client = new Client({ host: '127.0.0.1', port: node.port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 10_000 });
  client.on('error', () => {}); // a server dying mid-query surfaces through the awaited call below
  try {
    try {
      await client.connect();
    } catch (err) {
      if (err instanceof Error) err.message = `${node.name} (127.0.0.1:${node.port}, data dir ${node.dataDir}): ${err.message}`;
      throw err;
    }
    // A multi-statement simple query yields one QueryResult per statement: the last one's rows.
    const result = (await client.query(sql, params)) as QueryResult | QueryResult[];
    return Array.isArray(result) ? (result[result.length - 1]?.rows ?? []) : result.rows;
  } finally {
    await client.end().catch(() => {});
  }
}
