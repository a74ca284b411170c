// The shape of a pgwarden configuration file, as the user writes it (snake_case), with every
// default. Output keeps the YAML key names; load.ts renames to the Config contract.
//
// Unknown keys are collected as issues of their own (one per key, with a "did you mean"),
// and every check runs even when a sibling value is wrong, so one run reports every problem.

import { z } from 'zod';
import { showValue } from './show-value';
import { isMapping, nonEmptyList, optionalSection, presentSection, section } from './schema-sections';
import * as f from './fields';
import { checkRules } from './rules';
import type { AuthMode, HookEvent, ServerTlsMode, TlsConfig, TlsMode } from './types';

export { CONFIG_KEYS, type UnknownKeyParams } from './schema-sections';

export const ROUTES = ['primary', 'replica', 'any'] as const;
export const BALANCES = ['roundrobin', 'leastconn', 'random'] as const;
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const LOG_FORMATS = ['json', 'pretty'] as const;
export const FAILOVER_MODES = ['follow', 'promote'] as const;
export const ON_DOWN = ['shutdown-sessions', 'keep'] as const;
export const ON_ETCD_LOSS = ['keep', 'readonly'] as const;
export const AUTH_MODES = ['passthrough', 'proxy'] as const satisfies readonly AuthMode[];
/** The default auth.query: the SECURITY DEFINER function of the README ("Authentication at the proxy"). */
export const DEFAULT_AUTH_QUERY = 'SELECT usename, passwd FROM pgwarden.get_auth($1)';
export const SURVIVE = ['off', 'on'] as const;
export const TLS_MODES = ['passthrough', 'disable', 'terminate'] as const satisfies readonly TlsMode[];
export const TLS_VERSIONS = ['TLSv1.2', 'TLSv1.3'] as const satisfies readonly TlsConfig['minVersion'][];
export const CLIENT_CERT = ['off', 'verify'] as const satisfies readonly TlsConfig['clientCert'][];
export const CLIENT_TLS = ['allow', 'require'] as const satisfies readonly TlsConfig['client'][];
export const SERVER_TLS_MODES = ['disable', 'prefer', 'require', 'verify-ca', 'verify-full'] as const satisfies readonly ServerTlsMode[];
export const HOOK_EVENTS = ['pre_switchover', 'post_switchover', 'on_promote', 'on_primary_change', 'on_backend_down', 'on_backend_up', 'on_fence'] as const satisfies readonly HookEvent[];

/** `cpu: 80%` with no `for`: a short spike is not an alert. */
const DEFAULT_THRESHOLD_FOR_MS = 30_000;

const ROLE_ALIASES = { master: 'primary', leader: 'primary', standby: 'replica', slave: 'replica', secondary: 'replica' } as const;

const listener = section('listeners[]', {
  name: f.name(),
  bind: f.bind(),
  route: f.oneOf(ROUTES, { ...ROLE_ALIASES, rw: 'primary', write: 'primary', ro: 'replica', read: 'replica' }),
  balance: f.oneOf(BALANCES, { round_robin: 'roundrobin', rr: 'roundrobin', leastconnections: 'leastconn', least_conn: 'leastconn' }).default('roundrobin'),
  // Only for `route: replica`; absence matters (rules.ts), so the default is applied in load.ts.
  fallback: f.oneOf(['primary', 'none'], { master: 'primary', leader: 'primary' }).optional(),
  max_connections: f.integer(0).default(10_000),
});

const backend = section('backends[]', {
  name: f.name(),
  host: f.host(),
  port: f.port(),
  weight: f.integer(0, 1000).default(100),
  backup: f.flag().default(false),
  role: f.oneOf(['primary', 'replica'], ROLE_ALIASES).optional(),
  // Only with `health.patroni` (rules.ts): this server's Patroni REST port when it is not `health.patroni.port`.
  patroni_port: f.port().optional(),
});

const PEM_FILE = 'the path of a PEM file';

export const PATRONI_SCHEMES = ['http', 'https'] as const;

const patroniEtcd = section(
  'health.patroni.dcs.etcd',
  {
    endpoints: nonEmptyList(f.httpUrl(), 'endpoint', '`endpoints: [http://127.0.0.1:2379]`', true),
    timeout: f.duration('positive').default(1_000),
    user: f.text('an etcd user name').optional(),
    password_env: f.envName().optional(),
    tls: presentSection(
      section('health.patroni.dcs.etcd.tls', {
        ca_file: f.text(PEM_FILE).optional(),
        cert_file: f.text(PEM_FILE).optional(),
        key_file: f.text(PEM_FILE).optional(),
      }),
    ),
  },
  { password: 'the etcd password is read only from the environment: name its variable in `password_env`' },
);

const patroni = section('health.patroni', {
  port: f.port().default(8008),
  scheme: f.oneOf(PATRONI_SCHEMES, { tls: 'https', ssl: 'https' }).default('http'),
  // Only for `scheme: https` (rules.ts).
  ca_file: f.text(PEM_FILE).optional(),
  // Default `health.interval`, applied in to-config.ts.
  interval: f.duration('positive').optional(),
  // Default `health.timeout`, applied in to-config.ts.
  timeout: f.duration('positive').optional(),
  dcs: presentSection(
    section('health.patroni.dcs', {
      etcd: z.preprocess((value) => (value === null || value === undefined ? {} : value), patroniEtcd),
      namespace: f.keyPrefix().default('/service'),
      scope: f.text("Patroni's `scope`: the cluster's name"),
    }),
  ),
});

const health = section('health', {
  check: f.oneOf(['postgres', 'tcp'], { postgresql: 'postgres', pg: 'postgres', sql: 'postgres' }).default('postgres'),
  user: f.text('a PostgreSQL user name').default('postgres'),
  password: f.secret('a password (in quotes if it looks like a number)').optional(),
  password_env: f.envName().optional(),
  database: f.text('a database name').default('postgres'),
  interval: f.duration('positive').default(1_000),
  // Default min(250ms, interval), applied in load.ts: a short `interval` alone must not be an error.
  fast_interval: f.duration('positive').optional(),
  down_interval: f.duration('positive').default(2_000),
  timeout: f.duration('positive').default(1_000),
  rise: f.integer(1).default(2),
  fall: f.integer(1).default(2),
  jitter: f.fraction().default(0.1),
  max_replica_lag: f.replicaLag().optional(),
  agent: presentSection(
    section('health.agent', {
      port: f.port(),
      interval: f.duration('positive').default(2_000),
      timeout: f.duration('positive').default(1_000),
    }),
  ),
  patroni: presentSection(patroni),
});

const failover = section('failover', {
  queue_timeout: f.duration('non-negative').default(30_000),
  queue_size: f.integer(0).default(1_000),
  mode: f.oneOf(FAILOVER_MODES, { follower: 'follow', external: 'follow', manual: 'follow', auto: 'promote', automatic: 'promote' }).default('follow'),
  on_down: f
    .oneOf(ON_DOWN, { shutdown_sessions: 'shutdown-sessions', shutdown: 'shutdown-sessions', close: 'shutdown-sessions', kill: 'shutdown-sessions', none: 'keep' })
    .default('shutdown-sessions'),
  promote_after: f.duration('non-negative').default(5_000),
  max_lag_on_failover: f.size().default(16 * 1024 ** 2),
  drain_timeout: f.duration('non-negative').default(10_000),
  watch_interval: f.duration('non-negative').default(50),
});

/** One hook; the same section serves every event, so a misplaced key is not listed six times. */
const hook = section('hooks.<event>[]', {
  command: f.argv(),
  timeout: f.duration('positive').default(60_000),
  env: f.environment().default({}),
});

function hookList() {
  return z.preprocess(
    (value, ctx) => {
      if (value === null) return [];
      if (isMapping(value)) {
        ctx.addIssue({ code: 'custom', input: value, message: 'expected a list of hooks, got a mapping', params: { hint: 'start each hook with `- `: `- command: [/path/script.sh]`' } });
        return [];
      }
      return value;
    },
    z.array(hook, { error: (issue) => `expected a list of hooks, got ${showValue(issue.input)}` }).optional(),
  );
}

const hooks = section('hooks', Object.fromEntries(HOOK_EVENTS.map((event) => [event, hookList()])) as Record<HookEvent, ReturnType<typeof hookList>>);

const threshold = section('host.thresholds.<metric>', {
  above: f.percent(),
  for: f.duration('non-negative').default(DEFAULT_THRESHOLD_FOR_MS),
});

/** `cpu: 80%` is short for `cpu: { above: 80%, for: 30s }`. */
function hostThreshold() {
  return z.preprocess((value) => (isMapping(value) || value === undefined ? value : { above: value }), threshold.optional());
}

const host = section('host', {
  interval: f.duration('positive').default(5_000),
  thresholds: optionalSection(section('host.thresholds', { cpu: hostThreshold(), memory: hostThreshold(), disk: hostThreshold() })),
});

const admin = section('admin', {
  bind: f.bind().default({ host: '127.0.0.1', port: 8404 }),
  token: f.secret('a token (in quotes if it looks like a number)').optional(),
  token_env: f.envName().optional(),
});

const tls = section('tls', {
  mode: f
    .oneOf(TLS_MODES, { disabled: 'disable', off: 'disable', none: 'disable', terminated: 'terminate', termination: 'terminate', offload: 'terminate' })
    .default('passthrough'),
  // Only for `mode: terminate`; absence matters (rules.ts), so these defaults are applied in to-config.ts.
  cert_file: f.text(PEM_FILE).optional(),
  key_file: f.text(PEM_FILE).optional(),
  min_version: f.oneOf(TLS_VERSIONS, { '1.2': 'TLSv1.2', '1.3': 'TLSv1.3', 'tlsv1.2': 'TLSv1.2', 'tlsv1.3': 'TLSv1.3', 'tls1.2': 'TLSv1.2', 'tls1.3': 'TLSv1.3' }).optional(),
  ca_file: f.text(PEM_FILE).optional(),
  client_cert: f
    .oneOf(CLIENT_CERT, { required: 'verify', require: 'verify', 'verify-ca': 'verify', verify_ca: 'verify', on: 'verify', none: 'off', no: 'off', disable: 'off' }, {
      'verify-full':
        "pgwarden checks that a client certificate is signed by `ca_file` (`verify`); it does not match the certificate's name to the user, and PostgreSQL behind it never sees the certificate",
    })
    .optional(),
  client: f.oneOf(CLIENT_TLS, { required: 'require', prefer: 'allow', optional: 'allow' }).optional(),
  server: f
    .oneOf(SERVER_TLS_MODES, { verify_ca: 'verify-ca', verify_full: 'verify-full', verifyca: 'verify-ca', verifyfull: 'verify-full', off: 'disable', disabled: 'disable', required: 'require' }, {
      allow: "libpq's `allow` (plain text first, TLS only if the server insists) is not offered: use `prefer` or `disable`",
    })
    .default('disable'),
  server_ca_file: f.text(PEM_FILE).optional(),
});

const auth = section(
  'auth',
  {
    mode: f.oneOf(AUTH_MODES, { end_to_end: 'passthrough', 'end-to-end': 'passthrough', off: 'passthrough', pgwarden: 'proxy', proxied: 'proxy' }).default('passthrough'),
    // Only for `mode: proxy` (rules.ts): absence matters, so the defaults are applied in to-config.ts.
    user: f.text('the role auth.query runs as').optional(),
    password_env: f.envName().optional(),
    query: f.text('a SELECT returning (usename, passwd) for $1').optional(),
    database: f.text('a database name').optional(),
  },
  { password: "the auth user's password is read only from the environment: name its variable in `password_env`" },
);

const logging = section('logging', {
  level: f.oneOf(LOG_LEVELS, { warning: 'warn', err: 'error', critical: 'fatal', verbose: 'debug', off: 'silent' }).default('info'),
  format: f.oneOf(LOG_FORMATS, { text: 'pretty', human: 'pretty', console: 'pretty', plain: 'pretty', ndjson: 'json' }).default('json'),
});

/** TCP keepalive on client sockets: 0 for `idle` turns it off. */
const clientKeepalive = section('proxy.client_keepalive', {
  idle: f.duration('non-negative').default(60_000),
  interval: f.duration('positive').default(10_000),
  count: f.integer(1, 127).default(3),
});

const proxy = section('proxy', {
  client_login_timeout: f.duration('positive').default(10_000),
  client_keepalive: optionalSection(clientKeepalive),
  client_user_timeout: f.duration('non-negative').default(30_000),
  client_idle_timeout: f.duration('non-negative').default(0),
  unknown_cancel_rate: f.integer(1, 100_000).default(50),
  connect_timeout: f.duration('positive').default(2_000),
  startup_timeout: f.duration('positive').default(15_000),
  // Per server; 0: no limit. Why 64: README, "Limits and overload".
  max_concurrent_startups: f.integer(0, 100_000).default(64),
  shutdown_timeout: f.duration('non-negative').default(10_000),
});

// Issue 19: an idle session whose server goes away moves to the new server instead of closing.
const sessions = section('sessions', {
  // YAML 1.1 readers spell on/off as booleans; both spellings are accepted (fields.ts onOff).
  survive: f.onOff().default('off'),
});

const etcdTls = section('coordination.etcd.tls', {
  ca_file: f.text(PEM_FILE).optional(),
  cert_file: f.text(PEM_FILE).optional(),
  key_file: f.text(PEM_FILE).optional(),
});

const etcd = section(
  'coordination.etcd',
  {
    endpoints: nonEmptyList(f.httpUrl(), 'endpoint', '`endpoints: [http://127.0.0.1:2379]`', true),
    prefix: f.keyPrefix().default('/pgwarden'),
    // Must stay below ttl/3 (rules.ts): the lease is renewed every ttl/3.
    timeout: f.duration('positive').default(1_000),
    user: f.text('an etcd user name').optional(),
    password_env: f.envName().optional(),
    tls: presentSection(etcdTls),
  },
  { password: 'the etcd password is read only from the environment: name its variable in `password_env`' },
);

const coordination = section('coordination', {
  name: f.name(),
  members: nonEmptyList(f.name(), 'member', '`members: [a, b, c]`', true),
  ttl: f.lease().default(10_000),
  on_etcd_loss: f
    .oneOf(ON_ETCD_LOSS, { 'read-only': 'readonly', read_only: 'readonly', ro: 'readonly', continue: 'keep', ignore: 'keep', none: 'keep' })
    .default('keep'),
  // Where the other instances send a CancelRequest for a key of this one, for listeners bound
  // to a wildcard address (rules.ts refuses a wildcard here).
  advertise: f.host().optional(),
  etcd: optionalSection(etcd),
});

const document = section('', {
  listeners: nonEmptyList(listener, 'listener', '`listeners: [{ name: rw, bind: "127.0.0.1:6432", route: primary }]`'),
  backends: nonEmptyList(backend, 'backend', '`backends: [{ name: pg1, host: 127.0.0.1, port: 5432 }]`'),
  health: optionalSection(health),
  failover: optionalSection(failover),
  tls: optionalSection(tls),
  auth: optionalSection(auth),
  logging: optionalSection(logging),
  proxy: optionalSection(proxy),
  sessions: optionalSection(sessions),
  hooks: optionalSection(hooks),
  admin: presentSection(admin),
  host: optionalSection(host),
  coordination: presentSection(coordination),
});

/** A configuration document after parsing: YAML key names, defaults applied, units converted. */
export type ParsedDocument = z.output<typeof document>;

/**
 * The schema for one load. `env` resolves `password_env`; cross-key rules (duplicates, loops,
 * fast_interval <= interval ...) run even when single values are wrong, on what did parse.
 */
export function configSchema(env: NodeJS.ProcessEnv) {
  return document.superRefine(
    (doc, ctx) =>
      checkRules(doc, env, (path, message, hint) => {
        ctx.addIssue({ code: 'custom', path: [...path], message, params: hint === undefined ? {} : { hint } });
      }),
    { when: () => true },
  );
}
