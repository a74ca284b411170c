// Part of the Patroni harness for the tests (see patroni.ts); not the proxy.
// What a Patroni cluster is asked for (PatroniClusterOptions) and gives (PatroniNode), its
// errors, and the environment Patroni and patronictl start with.
import { PgwardenError, type ErrorCode } from '../errors';
import type { PgNode } from './cluster-options';

export interface PatroniClusterOptions {
  /** Patroni's synchronous_mode (bootstrap DCS config): the leader names one synchronous standby. Default false. */
  synchronousMode?: boolean;
  /**
   * A LOGIN + pg_monitor role, created with SQL on the leader once the cluster is up (it
   * replicates); pg_hba.conf makes it authenticate with scram-sha-256 over TCP while every
   * other user is trusted from 127.0.0.0/8, as in the PostgreSQL harness.
   */
  checkUser?: { name: string; password: string };
  /** Patroni's scope (the cluster's name in the DCS); default a random one, so that tests never share a cluster. */
  scope?: string;
  /** Where data directories, patroni.yml files and logs go; default a fresh mkdtemp under os.tmpdir(). Removed by destroy(). */
  baseDir?: string;
  /** Progress lines; silent by default. */
  log?: (line: string) => void;
}

/** One member: a Patroni process and the PostgreSQL it runs. `port` is the PostgreSQL port, as in PgNode. */
export interface PatroniNode extends PgNode {
  /** The PostgreSQL port (the same as `port`). */
  readonly pgPort: number;
  /** Patroni's REST API port. */
  readonly restPort: number;
  /** This node's patroni.yml (patronictl -c takes it too). */
  readonly configFile: string;
  /** Patroni's output, and PostgreSQL's, which Patroni's postmaster inherits. */
  readonly logFile: string;
}

export type PatroniClusterErrorCode = Extract<ErrorCode, 'PGW_PATRONI_OPTIONS' | 'PGW_PATRONI_START_FAILED' | 'PGW_PATRONI_COMMAND_FAILED'>;

export class PatroniClusterError extends PgwardenError {
  declare readonly code: PatroniClusterErrorCode;
  constructor(code: PatroniClusterErrorCode, message: string) {
    super(code, message);
  }
}

export function validatePatroniOptions(opts: PatroniClusterOptions): void {
  if (opts.scope !== undefined && !/^[a-z0-9][a-z0-9-]{0,62}$/.test(opts.scope)) {
    throw new PatroniClusterError('PGW_PATRONI_OPTIONS', `scope must be 1-63 lower-case letters, digits or dashes, got ${JSON.stringify(opts.scope)}`);
  }
  const name = opts.checkUser?.name;
  if (name !== undefined && !/^[a-z_][a-z0-9_]*$/.test(name)) {
    throw new PatroniClusterError('PGW_PATRONI_OPTIONS', `checkUser.name must be a plain lower-case identifier (it goes into pg_hba.conf and SQL), got ${JSON.stringify(name)}`);
  }
}

// Patroni reads every PATRONI_* variable as configuration (PATRONI_SCOPE, PATRONI_NAME …) and
// libpq every PG* one (PGHOST, PGPORT …); both would silently override the generated files.
// HOME is the cluster's own directory: the postgres OS user may not read root's.
export function patroniFreeEnv(home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('PATRONI') && !key.startsWith('PG')) env[key] = value;
  }
  env.HOME = home;
  return env;
}
