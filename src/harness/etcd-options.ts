// Part of the etcd harness for the tests (see etcd.ts); not the proxy.
// What an etcd cluster is asked for, its errors, and what its members start with: a base
// directory and an environment without ETCD_ variables.
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PgwardenError, type ErrorCode } from '../errors';

const MAX_MEMBERS = 9;

export interface EtcdClusterOptions {
  /** Number of members, e1 … eN; default 3. */
  members?: number;
  /** Loopback addresses (127.x.y.z) each member's client port listens on; default ['127.0.0.1'], which must be among them. */
  clientAddresses?: string[];
  /** Where data directories and member logs go; default a fresh mkdtemp under os.tmpdir(). Removed by destroy(). */
  baseDir?: string;
  /** Progress lines; silent by default. */
  log?: (line: string) => void;
}

export type EtcdClusterErrorCode = Extract<ErrorCode, 'PGW_ETCD_OPTIONS' | 'PGW_ETCD_START_FAILED' | 'PGW_ETCD_STOP_FAILED'>;

export class EtcdClusterError extends PgwardenError {
  declare readonly code: EtcdClusterErrorCode;
  constructor(code: EtcdClusterErrorCode, message: string) {
    super(code, message);
  }
}

export function validateEtcdOptions(count: number, addresses: readonly string[]): void {
  if (!Number.isInteger(count) || count < 1 || count > MAX_MEMBERS) {
    throw new EtcdClusterError('PGW_ETCD_OPTIONS', `members must be an integer from 1 to ${MAX_MEMBERS}, got ${count}`);
  }
  const notLoopback = addresses.find((a) => !/^127(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/.test(a));
  if (notLoopback !== undefined) {
    throw new EtcdClusterError('PGW_ETCD_OPTIONS', `clientAddresses must be IPv4 loopback addresses (127.x.y.z), got ${JSON.stringify(notLoopback)}`);
  }
  // The harness advertises and checks health there, and endpoints() defaults to it.
  if (!addresses.includes('127.0.0.1') || new Set(addresses).size !== addresses.length) {
    throw new EtcdClusterError('PGW_ETCD_OPTIONS', `clientAddresses must include 127.0.0.1 and name each address once, got ${addresses.join(', ')}`);
  }
}

export function makeEtcdBaseDir(requested: string | undefined): string {
  if (requested === undefined) return mkdtempSync(join(tmpdir(), 'pgwarden-etcd-'));
  const dir = resolve(requested);
  mkdirSync(dir, { recursive: true });
  return dir;
}

// etcd reads every ETCD_* variable as a flag, and refuses to start when one repeats a flag given
// on the command line; every setting is passed explicitly instead. ETCD_UNSUPPORTED_ARCH stays:
// without it etcd 3.4 refuses to run on arm64 and other architectures.
export function etcdFreeEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('ETCD') || key === 'ETCD_UNSUPPORTED_ARCH') env[key] = value;
  }
  return env;
}
