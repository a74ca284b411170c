// Part of the Patroni harness for the tests (see patroni.ts); not the proxy.
// The patroni.yml of one node (Patroni 3.0 configuration: "YAML Configuration Settings" in
// Patroni's documentation). Every node of a cluster gets the same bootstrap section; only the
// first node to take the initialize key in the DCS uses it.
import { stringify } from 'yaml';
import { renderHba } from './cluster-conf';

export interface NodeConfInput {
  readonly scope: string;
  readonly name: string;
  readonly pgPort: number;
  readonly restPort: number;
  readonly etcdHost: string; // host:port of an etcd v3 client URL
  readonly dataDir: string;
  readonly socketDir: string;
  readonly binDir: string;
  readonly pgpassFile: string;
  readonly synchronousMode: boolean;
  readonly checkUser?: string;
}

// Patroni's own accounts. pg_hba.conf trusts everyone but the check user from loopback, so the
// passwords only matter to a test that asks for them.
/** Patroni's `namespace` for every test cluster: its keys are under `<namespace>/<scope>/` in etcd. */
export const PATRONI_NAMESPACE = '/pgwarden-test';

export const PATRONI_SUPERUSER = { username: 'postgres', password: 'patroni-super-3b7e' };
export const PATRONI_REPLICATION = { username: 'replicator', password: 'patroni-repl-5d21' };

// The PostgreSQL harness's settings (cluster-conf.ts) as far as Patroni lets them be set:
// listen_addresses, port, hot_standby, wal_level and max_wal_senders are Patroni's. fsync is
// off (throw-away data), but full_page_writes stays on: pg_rewind, which brings a crashed
// leader back as a replica, refuses to run without it.
const PARAMETERS: Readonly<Record<string, string | number>> = {
  fsync: 'off',
  shared_buffers: '16MB',
  max_connections: 200,
  wal_keep_size: '64MB',
  logging_collector: 'off',
  password_encryption: 'scram-sha-256',
};

/** The text of the node's patroni.yml. */
export function renderPatroniConf(n: NodeConfInput): string {
  const hba = renderHba(n.checkUser)
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'));
  const conf = {
    scope: n.scope,
    namespace: `${PATRONI_NAMESPACE}/`,
    name: n.name,
    log: { level: 'INFO' },
    restapi: { listen: `127.0.0.1:${n.restPort}`, connect_address: `127.0.0.1:${n.restPort}` },
    // Patroni 3.0 speaks etcd's v3 API itself, through etcd's gRPC gateway (JSON over HTTP).
    etcd3: { hosts: [n.etcdHost] },
    bootstrap: {
      dcs: {
        // Fast, for tests: a leader that stops renewing loses its key after 10 s, and every
        // node runs its HA loop every second. Patroni wants loop_wait + 2 × retry_timeout ≤ ttl.
        ttl: 10,
        loop_wait: 1,
        retry_timeout: 4,
        maximum_lag_on_failover: 1024 * 1024,
        // Patroni's default (300 s) restarts a crashed primary in place rather than failing
        // over; 0 fails over to a replica at once when one can take over (with
        // synchronous_mode only the synchronous standby can).
        primary_start_timeout: 0,
        synchronous_mode: n.synchronousMode,
        postgresql: { use_pg_rewind: true, use_slots: true, parameters: PARAMETERS },
      },
      initdb: [{ encoding: 'UTF8' }, { locale: 'C' }, 'no-sync'],
    },
    postgresql: {
      listen: `127.0.0.1:${n.pgPort}`,
      connect_address: `127.0.0.1:${n.pgPort}`,
      data_dir: n.dataDir,
      bin_dir: n.binDir,
      pgpass: n.pgpassFile,
      authentication: { superuser: PATRONI_SUPERUSER, replication: PATRONI_REPLICATION },
      // The node's own socket directory: /var/run/postgresql may not exist or not be writable.
      parameters: { unix_socket_directories: n.socketDir },
      pg_hba: hba,
    },
    tags: { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false },
  };
  return `# Written by pgwarden's Patroni harness for node ${n.name}.\n${stringify(conf)}`;
}
