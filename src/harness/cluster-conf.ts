// Part of the cluster harness for the demo, tests and benchmarks (see cluster.ts); not the proxy.
// The configuration text of a test cluster: the settings appended to every postgresql.conf,
// the per-node include file's name, and pg_hba.conf.

// Fast and light, so that several clusters fit on a 2-core machine at once. Durability is
// deliberately off: these servers hold throw-away test data.
const BASE_SETTINGS: Readonly<Record<string, string>> = {
  fsync: 'off',
  full_page_writes: 'off',
  shared_buffers: '16MB',
  max_connections: '200',
  max_wal_senders: '10',
  wal_level: 'replica',
  hot_standby: 'on',
  wal_keep_size: '64MB',
  listen_addresses: '127.0.0.1',
  logging_collector: 'off',
  password_encryption: 'scram-sha-256',
};

// Per-node settings live in their own file: pg_basebackup copies the primary's postgresql.conf
// to every replica, and rewriting one small file is simpler than editing a copied one.
export const NODE_CONF = 'pgwarden.node.conf';

/** The settings appended to the primary's postgresql.conf (replicas copy it), then the include. */
export function renderSettings(opts: { readonly ssl?: boolean; readonly settings?: Readonly<Record<string, string>> }): string {
  const settings: Record<string, string> = { ...BASE_SETTINGS };
  if (opts.ssl === true) Object.assign(settings, { ssl: 'on', ssl_cert_file: 'server.crt', ssl_key_file: 'server.key' });
  Object.assign(settings, opts.settings ?? {});
  const lines = Object.entries(settings).map(([k, v]) => `${k} = ${quoteConf(v)}`);
  return `\n# ---- pgwarden cluster harness ----\n${lines.join('\n')}\ninclude_if_exists = '${NODE_CONF}'\n`;
}

// The check user's line comes first: pg_hba.conf is first-match, and the trust lines below
// would otherwise let it in without a password. IPv4 lines cover all of 127.0.0.0/8, not only
// 127.0.0.1: a test may add 127.0.0.2, 127.0.0.3 … to listen_addresses so that each in-process
// proxy reaches the server through its own loopback address, and then cut one of them alone
// (an iptables DROP on that destination address).
export function renderHba(checkUser: string | undefined): string {
  const lines = ['# TYPE  DATABASE     USER  ADDRESS  METHOD', 'local all all trust', 'local replication all trust'];
  if (checkUser !== undefined) {
    lines.push(`host all "${checkUser}" 127.0.0.0/8 scram-sha-256`, `host all "${checkUser}" ::1/128 scram-sha-256`);
  }
  lines.push(
    'host all all 127.0.0.0/8 trust',
    'host all all ::1/128 trust',
    'host replication all 127.0.0.0/8 trust',
    'host replication all ::1/128 trust',
  );
  return `${lines.join('\n')}\n`;
}

// Any GUC value may be written as a quoted string; a quote inside doubles.
export function quoteConf(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}
