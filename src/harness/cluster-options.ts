// Part of the cluster harness for the demo, tests and benchmarks (see cluster.ts); not the proxy.
// What a cluster is asked for (ClusterOptions) and gives (PgNode), its errors, and the
// bounded poll every wait of the harness runs.

import { PgwardenError, type ErrorCode } from '../errors';

const POLL_MS = 50;

export interface PgNode {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
}

export interface ClusterOptions {
  /** Number of streaming replicas besides the primary; default 2. */
  replicas?: number;
  /** ssl=on with a self-signed certificate made by the openssl CLI. */
  ssl?: boolean;
  /** A LOGIN + pg_monitor role that must authenticate with scram-sha-256 over TCP. */
  checkUser?: { name: string; password: string };
  /**
   * Extra postgresql.conf settings for every node; they override the harness's own. For example
   * listen_addresses: '127.0.0.1,127.0.0.2,127.0.0.3' (pg_hba.conf trusts all of 127.0.0.0/8);
   * keep 127.0.0.1 in it, where the harness itself and the replicas connect.
   */
  settings?: Record<string, string>;
  /** Progress lines; silent by default. */
  log?: (line: string) => void;
  /** Where data directories and server logs go; default a fresh mkdtemp under os.tmpdir(). Removed by destroy(). */
  baseDir?: string;
}

/** The codes (meanings in src/errors.ts) of what goes wrong with a cluster itself. */
export type PgClusterErrorCode = Extract<
  ErrorCode,
  'PGW_PG_CLUSTER_OPTIONS' | 'PGW_PG_START_FAILED' | 'PGW_PG_WAIT_TIMEOUT' | 'PGW_PG_NO_SINGLE_PRIMARY' | 'PGW_PG_NOT_A_MEMBER'
>;

export class PgClusterError extends PgwardenError {
  declare readonly code: PgClusterErrorCode;
  constructor(code: PgClusterErrorCode, message: string) {
    super(code, message);
  }
}

export function validateOptions(opts: ClusterOptions, replicas: number): void {
  if (!Number.isInteger(replicas) || replicas < 0 || replicas > 20) {
    throw new PgClusterError('PGW_PG_CLUSTER_OPTIONS', `replicas must be an integer from 0 to 20, got ${replicas}`);
  }
  for (const key of Object.keys(opts.settings ?? {})) {
    if (!/^[A-Za-z_][A-Za-z0-9_.]*$/.test(key)) throw new PgClusterError('PGW_PG_CLUSTER_OPTIONS', `invalid postgresql.conf setting name: ${JSON.stringify(key)}`);
  }
  const name = opts.checkUser?.name;
  if (name !== undefined && (name === '' || /["\s]/.test(name))) {
    throw new PgClusterError('PGW_PG_CLUSTER_OPTIONS', `checkUser.name must be non-empty without quotes or spaces (it goes into pg_hba.conf), got ${JSON.stringify(name)}`);
  }
}

// Polls check() until it returns true. The pause between polls is a ref'd timer on purpose:
// while a caller awaits this, nothing else may keep the event loop alive, and an unref'd
// timer would let the process exit in the middle of the wait. It always ends by the deadline.
export async function waitUntil(what: string | (() => string), timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new PgClusterError('PGW_PG_WAIT_TIMEOUT', `timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}${why}`);
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
