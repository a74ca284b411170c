import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { describeConfig } from '../../src/config/describe';
import { diffConfig } from '../../src/control/config-diff';
import { didYouMean } from '../../src/config/did-you-mean';
import { ConfigError, type ConfigProblem } from '../../src/errors';
import { loadConfigFile, parseConfig } from '../../src/config/load';
import { CONFIG_KEYS } from '../../src/config/schema';
import type { Config } from '../../src/config/types';

const EXAMPLE = join(__dirname, '..', '..', 'config', 'example.yaml');
const ENV = { PGWARDEN_CHECK_PASSWORD: 'example-secret-41' };

const LISTENERS = `listeners:
  - { name: rw, bind: "127.0.0.1:6432", route: primary }
`;
const BACKENDS = `backends:
  - { name: pg1, host: 127.0.0.1, port: 5432 }
`;
const MINIMAL = LISTENERS + BACKENDS;

/** The ConfigError that parsing `text` throws (fails the test when it parses). */
function configError(t: Test, text: string, env: NodeJS.ProcessEnv = {}): ConfigError {
  try {
    parseConfig(text, env, 'test.yaml');
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  t.fail('expected a ConfigError');
  return new ConfigError('PGW_CONFIG_INVALID', 'test.yaml', []);
}

/** The problems for `text`, which must include exactly one at `path`; that one is returned. */
function problemAt(t: Test, text: string, path: string, env: NodeJS.ProcessEnv = {}): ConfigProblem {
  const error = configError(t, text, env);
  const found = error.problems.filter((p) => p.path === path);
  t.equal(found.length, 1, `one problem at ${path}; got: ${error.format()}`);
  return found[0] ?? { path, message: '(none)' };
}

t.test('the example file loads and documents every key', async (t) => {
  const config = loadConfigFile(EXAMPLE, ENV);
  t.same(config.listeners.map((l) => [l.name, l.host, l.port, l.route, l.balance, l.fallback]), [
    ['rw', '127.0.0.1', 6432, 'primary', 'roundrobin', 'none'],
    ['ro', '127.0.0.1', 6433, 'replica', 'leastconn', 'primary'],
  ]);
  t.same(config.backends.map((b) => b.name), ['pg1', 'pg2', 'pg3']);
  t.equal(config.health.password, ENV.PGWARDEN_CHECK_PASSWORD);
  t.same(config.health.maxReplicaLag, { bytes: 16 * 1024 * 1024 });
  t.equal(config.health.jitter, 0.1);
  t.same(config.health.agent, { port: 5555, interval: 2_000, timeout: 1_000 });
  t.same(config.failover, { queueTimeout: 30_000, queueSize: 1_000, mode: 'follow', onDown: 'shutdown-sessions', promoteAfter: 5_000, maxLagOnFailover: 16 * 1024 ** 2, drainTimeout: 10_000, watchInterval: 50 });
  t.same(config.hooks, {
    on_primary_change: [{ command: ['config/hooks/backup-new-primary.sh'], timeout: 600_000, env: { BACKUP_DIR: '/var/backups/pgwarden', KEEP: '3' } }],
  });
  t.same(config.admin, { host: '127.0.0.1', port: 8404 }, 'the example enables the admin API without a token');
  t.same(config.host, { interval: 5_000, thresholds: { cpu: { above: 80, for: 30_000 }, memory: { above: 85, for: 30_000 }, disk: { above: 90, for: 60_000 } } });
  t.same(config.logging, { level: 'info', format: 'json' });

  const text = readFileSync(EXAMPLE, 'utf8');
  t.same(parseConfig(text, ENV), config, 'parseConfig and loadConfigFile agree');
  t.ok(CONFIG_KEYS.size > 30, 'the schema lists its keys');
  const undocumented = [...CONFIG_KEYS.keys()].filter((key) => !new RegExp(`(^|[\\s{,#])${key}:.*#`, 'm').test(text));
  t.same(undocumented, [], 'example.yaml shows every key with a comment');

  // The coordination section is commented out (it needs etcd); uncommented, it must load.
  const section = text.slice(text.indexOf('\n# coordination:') + 1);
  const uncommented = section.replace(/^# ?/gm, '');
  const coordination = parseConfig(`${MINIMAL}${uncommented}`, { PGWARDEN_ETCD_PASSWORD: 'etcd-secret-5' }).coordination;
  t.match(coordination, { name: 'a', members: ['a', 'b', 'c'], ttl: 10_000, onEtcdLoss: 'keep', etcd: { prefix: '/pgwarden', timeout: 1_000, password: 'etcd-secret-5' } });

  // The terminate keys of `tls` are commented out (they need certificate files); uncommented, they load.
  const tlsSection = text.slice(text.indexOf('\ntls:') + 1, text.indexOf('\nproxy:') + 1);
  const terminate = tlsSection.replace('mode: passthrough', 'mode: terminate').replace(/^ {2}# (?=[a-z_]+:)/gm, '  ');
  t.same(parseConfig(`${MINIMAL}${terminate}`, {}).tls, {
    mode: 'terminate',
    certFile: '/etc/pgwarden/server.pem',
    keyFile: '/etc/pgwarden/server.key',
    minVersion: 'TLSv1.2',
    caFile: '/etc/pgwarden/client-ca.pem',
    clientCert: 'verify',
    client: 'require',
    server: 'verify-full',
    serverCaFile: '/etc/pgwarden/server-ca.pem',
  });

  // The proxy keys of `auth` are commented out (they need a role and a password); uncommented, they load.
  const authSection = text.slice(text.indexOf('\nauth:') + 1, text.indexOf('\nlogging:') + 1);
  const proxied = authSection.replace('mode: passthrough', 'mode: proxy').replace(/^ {2}# (?=[a-z_]+:)/gm, '  ');
  t.same(parseConfig(`${MINIMAL}${proxied}`, { PGWARDEN_AUTH_PASSWORD: 'auth-secret-1' }).auth, {
    mode: 'proxy',
    user: 'pgwarden_auth',
    password: 'auth-secret-1',
    query: 'SELECT usename, passwd FROM pgwarden.get_auth($1)',
    database: 'postgres',
  });
});

t.test('the YAML from the design loads exactly as written', async (t) => {
  const config = parseConfig(
    `
listeners:
  - name: rw
    bind: 127.0.0.1:6432
    route: primary            # primary | replica | any
  - name: ro
    bind: 127.0.0.1:6433
    route: replica
    balance: roundrobin       # roundrobin | leastconn | random
    fallback: primary         # used when no replica is healthy; default: none
backends:
  - { name: pg1, host: 127.0.0.1, port: 5432 }
  - { name: pg2, host: 127.0.0.1, port: 5433, weight: 100 }
  - { name: pg3, host: 127.0.0.1, port: 5434, backup: true }
health:
  check: postgres             # postgres | tcp
  user: pgwarden
  password_env: PGWARDEN_CHECK_PASSWORD   # or \`password:\`; omit for trust
  database: postgres
  interval: 1s
  fast_interval: 250ms
  down_interval: 2s
  timeout: 1s
  rise: 2
  fall: 2
  max_replica_lag: 16MB       # bytes (kB, MB, GB) or a duration (10s)
failover:
  queue_timeout: 30s
  queue_size: 1000
logging:
  level: info
`,
    ENV,
  );
  t.equal(config.listeners[1]?.fallback, 'primary');
  t.equal(config.backends[2]?.backup, true);
  t.equal(config.health.user, 'pgwarden');
  t.equal(config.health.fastInterval, 250);
});

t.test('a minimal file gets every default', async (t) => {
  const config = parseConfig(MINIMAL, {});
  const expected: Config = {
    listeners: [{ name: 'rw', host: '127.0.0.1', port: 6432, route: 'primary', balance: 'roundrobin', fallback: 'none', maxConnections: 10_000 }],
    backends: [{ name: 'pg1', host: '127.0.0.1', port: 5432, weight: 100, backup: false }],
    health: {
      check: 'postgres',
      user: 'postgres',
      database: 'postgres',
      interval: 1_000,
      fastInterval: 250,
      downInterval: 2_000,
      timeout: 1_000,
      rise: 2,
      fall: 2,
      jitter: 0.1,
      maxReplicaLag: {},
    },
    failover: { queueTimeout: 30_000, queueSize: 1_000, mode: 'follow', onDown: 'shutdown-sessions', promoteAfter: 5_000, maxLagOnFailover: 16_777_216, drainTimeout: 10_000, watchInterval: 50 },
    tls: { mode: 'passthrough', minVersion: 'TLSv1.2', clientCert: 'off', client: 'allow', server: 'disable' },
    auth: { mode: 'passthrough', query: 'SELECT usename, passwd FROM pgwarden.get_auth($1)', database: 'postgres' },
    logging: { level: 'info', format: 'json' },
    proxy: {
      clientLoginTimeout: 10_000,
      connectTimeout: 2_000,
      startupTimeout: 15_000,
      maxConcurrentStartups: 64,
      shutdownTimeout: 10_000,
      clientKeepalive: { idleMs: 60_000, intervalMs: 10_000, count: 3 },
      clientUserTimeout: 30_000,
      clientIdleTimeout: 0,
      unknownCancelRate: 50,
    },
    sessions: { survive: 'off' },
    hooks: {},
    host: { interval: 5_000, thresholds: {} },
  };
  t.strictSame(config, expected);
  t.notOk('password' in config.health, 'no password key when none is configured');
  t.notOk('role' in (config.backends[0] ?? {}), 'no role key when none is configured');
  t.notOk('agent' in config.health, 'no agent check unless configured');
  t.notOk('admin' in config, 'no admin API unless configured');

  t.strictSame(parseConfig(`${MINIMAL}health:\nfailover:\ntls:\nlogging:\nproxy:\nhooks:\nhost:\n`, {}), expected, 'empty sections are defaults');
  t.strictSame(parseConfig(`${MINIMAL}hooks: { post_switchover: [], on_fence: }\nhost: { thresholds: }\n`, {}), expected, 'empty hook lists and thresholds are none');
});

t.test('values are converted into the contract', async (t) => {
  const config = parseConfig(
    `listeners:
  - { name: any1, bind: "[::1]:7000", route: any, balance: random, max_connections: 0 }
backends:
  - { name: a, host: "::1", port: 5432, weight: 0, role: replica }
  - { name: b, host: "[fe80::1%eth0]", port: 5433, role: primary }
  - { name: c, host: db.example.com, port: 5434, weight: 1000, role: replica }
health: { check: tcp, interval: 500, jitter: 25%, timeout: 1.5s, rise: 1, fall: 5 }
failover: { queue_timeout: 0, queue_size: 0 }
tls: { mode: disable }
logging: { level: debug }
proxy: { client_login_timeout: 1m, connect_timeout: 100ms, startup_timeout: 3s, shutdown_timeout: 0 }
`,
    {},
  );
  t.same(config.listeners[0], { name: 'any1', host: '::1', port: 7000, route: 'any', balance: 'random', fallback: 'none', maxConnections: 0 });
  t.same(config.backends.map((b) => [b.host, b.weight, b.role]), [
    ['::1', 0, 'replica'],
    ['fe80::1%eth0', 100, 'primary'],
    ['db.example.com', 1000, 'replica'],
  ]);
  t.same([config.health.check, config.health.interval, config.health.jitter, config.health.timeout], ['tcp', 500, 0.25, 1500]);
  t.match(config.failover, { queueTimeout: 0, queueSize: 0 });
  t.match(config.proxy, { clientLoginTimeout: 60_000, connectTimeout: 100, startupTimeout: 3_000, shutdownTimeout: 0 });
  t.same(parseConfig(`${MINIMAL}health: { max_replica_lag: 10s }\n`, {}).health.maxReplicaLag, { ms: 10_000 });
  t.same(parseConfig(`${MINIMAL}health: { max_replica_lag: 1048576 }\n`, {}).health.maxReplicaLag, { bytes: 1_048_576 });
});

t.test('YAML anchors and merge keys share settings between entries', async (t) => {
  const config = parseConfig(
    `${LISTENERS}backends:
  - &pg { name: pg1, host: 10.0.0.1, port: 5432, weight: 7 }
  - { <<: *pg, name: pg2, host: 10.0.0.2 }
`,
    {},
  );
  t.same(config.backends.map((b) => [b.name, b.host, b.port, b.weight]), [
    ['pg1', '10.0.0.1', 5432, 7],
    ['pg2', '10.0.0.2', 5432, 7],
  ]);
});

t.test('the password comes from `password` or from the variable `password_env` names', async (t) => {
  t.equal(parseConfig(`${MINIMAL}health: { password: "0123" }\n`, {}).health.password, '0123');
  t.equal(parseConfig(`${MINIMAL}health: { password_env: MY_PW }\n`, { MY_PW: 'from-env' }).health.password, 'from-env');

  const both = problemAt(t, `${MINIMAL}health: { password: x, password_env: MY_PW }\n`, 'health.password_env', { MY_PW: 'y' });
  t.match(both.message, /either `password` or `password_env`, not both/);

  const unset = problemAt(t, `${MINIMAL}health: { password_env: MY_PW }\n`, 'health.password_env');
  t.equal(unset.message, 'environment variable `MY_PW` is not set');
  t.match(unset.hint, /^export MY_PW=/);

  t.match(problemAt(t, `${MINIMAL}health: { password_env: MY_PW }\n`, 'health.password_env', { MY_PW: '' }).message, /set but empty/);
  t.match(problemAt(t, `${MINIMAL}health: { password_env: $MY_PW }\n`, 'health.password_env').hint, /without `\$`: MY_PW/);
  t.match(problemAt(t, `${MINIMAL}health: { password: 1234 }\n`, 'health.password').hint, /quotes/, 'a number is not silently a password');
});

t.test('the returned config is deeply frozen', async (t) => {
  const config = parseConfig(`${MINIMAL}health: { max_replica_lag: 1MB }\n`, {});
  for (const part of [config, config.listeners, config.listeners[0], config.backends, config.backends[0], config.health, config.health.maxReplicaLag, config.failover, config.tls, config.logging, config.proxy, config.hooks, config.host, config.host.thresholds]) {
    t.ok(Object.isFrozen(part));
  }
  t.throws(() => {
    (config.health as { interval: number }).interval = 1;
  }, TypeError);
  t.throws(() => {
    (config.listeners as ListenerArray).push(config.listeners[0]!);
  }, TypeError);
  t.equal(config.health.interval, 1_000);

  const full = parseConfig(`${MINIMAL}hooks: { on_fence: [{ command: [a], env: { K: v } }] }\nadmin:\nhost: { thresholds: { cpu: 80% } }\nhealth: { agent: { port: 5555 } }\n`, {});
  const hook = full.hooks.on_fence?.[0];
  for (const part of [full.hooks.on_fence, hook, hook?.command, hook?.env, full.admin, full.host.thresholds.cpu, full.health.agent]) t.ok(Object.isFrozen(part));
});
type ListenerArray = Config['listeners'][number][];

t.test('unknown keys are rejected with a "did you mean" hint', async (t) => {
  const typo = problemAt(t, `${MINIMAL}health:\n  intervall: 1s\n`, 'health.intervall');
  t.equal(typo.message, 'unknown key `health.intervall` — did you mean `interval`?');
  t.equal(typo.line, 6);
  t.equal(typo.column, 3);

  t.equal(problemAt(t, `${MINIMAL}listener: []\n`, 'listener').message, 'unknown key `listener` — did you mean `listeners`?');
  t.equal(problemAt(t, `${MINIMAL}health: { fastInterval: 1s }\n`, 'health.fastInterval').message, 'unknown key `health.fastInterval` — did you mean `fast_interval`?');
  t.equal(problemAt(t, `${MINIMAL}health: { tiemout: 1s }\n`, 'health.tiemout').message, 'unknown key `health.tiemout` — did you mean `timeout`?');
  t.equal(
    problemAt(t, `${LISTENERS}backends:\n  - { name: pg1, host: h, port: 1, wieght: 5 }\n`, 'backends[0].wieght').message,
    'unknown key `backends[0].wieght` — did you mean `weight`?',
  );

  const misplaced = problemAt(t, `${MINIMAL}health: { queue_timeout: 5s }\n`, 'health.queue_timeout');
  t.equal(misplaced.message, 'unknown key `health.queue_timeout`');
  t.equal(misplaced.hint, '`queue_timeout` belongs under `failover`');
  t.equal(problemAt(t, `${MINIMAL}interval: 1s\n`, 'interval').hint, '`interval` belongs under `health`, `host`, `health.patroni`, `health.agent` or `proxy.client_keepalive`');
  const elsewhere = problemAt(t, `${MINIMAL}failover: { timeout: 1s }\n`, 'failover.timeout');
  t.equal(elsewhere.message, 'unknown key `failover.timeout`', 'no abbreviation guess when the key exists elsewhere');
  t.equal(elsewhere.hint, '`timeout` belongs under `health`, `health.patroni`, `health.agent`, each entry of `hooks.<event>`, `coordination.etcd` or `health.patroni.dcs.etcd`');

  const nothingClose = problemAt(t, `${MINIMAL}tls: { certificate: x.pem }\n`, 'tls.certificate');
  t.equal(nothingClose.message, 'unknown key `tls.certificate`');
  t.equal(nothingClose.hint, 'valid keys here: mode, cert_file, key_file, min_version, ca_file, client_cert, client, server, server_ca_file');

  const two = configError(t, `${MINIMAL}health: { intervall: 1s, falls: 3 }\n`);
  t.same(two.problems.map((p) => p.path), ['health.intervall', 'health.falls'], 'each unknown key is its own problem');

  t.equal(didYouMean('zzzzzz', ['interval', 'timeout']), undefined);
  t.equal(didYouMean('lag', ['max_replica_lag', 'rise']), 'max_replica_lag');
});

t.test('wrong types say what was expected', async (t) => {
  const quotedPort = problemAt(t, `${LISTENERS}backends:\n  - { name: pg1, host: h, port: "5432" }\n`, 'backends[0].port');
  t.equal(quotedPort.message, 'expected a port number from 1 to 65535, got "5432"');
  t.equal(quotedPort.hint, 'write the port without quotes');

  const backup = problemAt(t, `${LISTENERS}backends:\n  - { name: pg1, host: h, port: 1, backup: yes }\n`, 'backends[0].backup');
  t.equal(backup.message, 'expected `true` or `false`, got "yes"');

  t.match(problemAt(t, `listeners: { name: rw }\n${BACKENDS}`, 'listeners').message, /expected a list of listeners, got a mapping/);
  t.match(problemAt(t, `${MINIMAL}health: 5\n`, 'health').message, /expected a mapping with keys `check`, `user`.*got 5/);
  t.match(problemAt(t, `listeners:\n  - rw\n${BACKENDS}`, 'listeners[0]').message, /expected a mapping .*got "rw"/);
  t.match(problemAt(t, `${MINIMAL}health: { rise: two }\n`, 'health.rise').message, /expected an integer of at least 1, got "two"/);
  t.match(problemAt(t, `${MINIMAL}health: { rise: 1.5 }\n`, 'health.rise').message, /got 1.5/);
  t.match(problemAt(t, `${MINIMAL}health: { interval: 1x }\n`, 'health.interval').message, /unknown duration unit `x`/);
  t.match(problemAt(t, `${MINIMAL}health: { interval: "100" }\n`, 'health.interval').hint, /100ms/);
  t.match(problemAt(t, `${MINIMAL}health: { user: }\n`, 'health.user').message, /expected a PostgreSQL user name, got an empty value/);
  t.match(problemAt(t, `${MINIMAL}health: { jitter: 10 }\n`, 'health.jitter').hint, /10%/);
  t.match(problemAt(t, `${MINIMAL}health: { max_replica_lag: 16mb }\n`, 'health.max_replica_lag').hint, /16MB/);
  t.match(problemAt(t, `listeners:\n  - { name: "r w", bind: "127.0.0.1:1", route: any }\n${BACKENDS}`, 'listeners[0].name').message, /expected a name of letters/);
});

t.test('required keys and sections', async (t) => {
  const route = problemAt(t, `listeners:\n  - { name: rw, bind: "127.0.0.1:6432" }\n${BACKENDS}`, 'listeners[0].route');
  t.equal(route.message, 'required key is missing; expected one of `primary`, `replica`, `any`');
  t.equal(route.line, 2, 'a missing key points at the entry that should hold it');

  const none = configError(t, 'logging: { level: info }\n');
  t.same(none.problems.map((p) => [p.path, p.message]), [
    ['listeners', 'at least one listener is required'],
    ['backends', 'at least one backend is required'],
  ]);
  t.match(none.problems[0]?.hint, /name: rw, bind:/);
  t.equal(problemAt(t, `listeners: []\n${BACKENDS}`, 'listeners').message, 'at least one listener is required');

  const empty = configError(t, '# nothing here\n');
  t.match(empty.problems[0]?.message, /the configuration is empty/);
  t.match(configError(t, 'hello\n').problems[0]?.message, /expected a mapping with keys `listeners`, `backends`/);
});

t.test('enums list the allowed values', async (t) => {
  const route = problemAt(t, `listeners:\n  - { name: rw, bind: "127.0.0.1:1", route: master }\n${BACKENDS}`, 'listeners[0].route');
  t.equal(route.message, 'expected one of `primary`, `replica`, `any`, got "master"');
  t.equal(route.hint, 'did you mean `primary`?');
  t.equal(problemAt(t, `${LISTENERS}backends:\n  - { name: a, host: h, port: 1, role: standby }\n`, 'backends[0].role').hint, 'did you mean `replica`?');
  t.equal(
    problemAt(t, `listeners:\n  - { name: rw, bind: "127.0.0.1:1", route: any, balance: least_conn }\n${BACKENDS}`, 'listeners[0].balance').message,
    'expected one of `roundrobin`, `leastconn`, `random`, got "least_conn"',
  );
  t.match(problemAt(t, `${MINIMAL}health: { check: http }\n`, 'health.check').message, /one of `postgres`, `tcp`, got "http"/);
  t.equal(problemAt(t, `${MINIMAL}tls: { mode: terminated }\n`, 'tls.mode').hint, 'did you mean `terminate`?');
  t.equal(problemAt(t, `${MINIMAL}logging: { level: warning }\n`, 'logging.level').hint, 'did you mean `warn`?');
  t.match(problemAt(t, `${MINIMAL}logging: { level: infoo }\n`, 'logging.level').message, /`fatal`, `error`, `warn`, `info`, `debug`, `trace`, `silent`/);
});

t.test('impossible values', async (t) => {
  const backend = (extra: string) => `${LISTENERS}backends:\n  - { name: pg1, host: 127.0.0.1, port: 5432${extra} }\n`;
  t.equal(problemAt(t, `${LISTENERS}backends:\n  - { name: pg1, host: h, port: 70000 }\n`, 'backends[0].port').message, 'expected a port number from 1 to 65535, got 70000');
  t.match(problemAt(t, `${LISTENERS}backends:\n  - { name: pg1, host: h, port: 0 }\n`, 'backends[0].port').message, /got 0/);
  t.equal(problemAt(t, backend(', weight: 1001'), 'backends[0].weight').message, 'expected an integer from 0 to 1000, got 1001');
  t.match(problemAt(t, backend(', weight: -1'), 'backends[0].weight').message, /from 0 to 1000, got -1/);
  t.match(problemAt(t, `${MINIMAL}health: { rise: 0 }\n`, 'health.rise').message, /at least 1, got 0/);
  t.match(problemAt(t, `${MINIMAL}health: { fall: 0 }\n`, 'health.fall').message, /at least 1, got 0/);
  t.match(problemAt(t, `${MINIMAL}health: { timeout: 0 }\n`, 'health.timeout').message, /must be longer than 0/);
  t.match(problemAt(t, `${MINIMAL}health: { interval: 0s }\n`, 'health.interval').message, /must be longer than 0/);
  t.match(problemAt(t, `${MINIMAL}health: { timeout: -1s }\n`, 'health.timeout').message, /must not be negative/);
  t.match(problemAt(t, `${MINIMAL}failover: { queue_timeout: 30d }\n`, 'failover.queue_timeout').message, /at most 24 days/);
  t.match(problemAt(t, `${MINIMAL}failover: { queue_size: -1 }\n`, 'failover.queue_size').message, /at least 0, got -1/);
  t.match(problemAt(t, `${MINIMAL}proxy: { max_concurrent_startups: -1 }\n`, 'proxy.max_concurrent_startups').message, /from 0 to 100000, got -1/);
  t.match(problemAt(t, `${MINIMAL}proxy: { max_concurrent_startups: 8.5 }\n`, 'proxy.max_concurrent_startups').message, /integer/);
  t.match(problemAt(t, `${MINIMAL}health: { max_replica_lag: -16MB }\n`, 'health.max_replica_lag').message, /must not be negative/);
  t.match(problemAt(t, `listeners:\n  - { name: rw, bind: "127.0.0.1:6432", route: any, max_connections: -1 }\n${BACKENDS}`, 'listeners[0].max_connections').message, /at least 0/);

  const fast = problemAt(t, `${MINIMAL}health: { interval: 1s, fast_interval: 2s }\n`, 'health.fast_interval');
  t.match(fast.message, /must not be longer than `interval`/);
  t.ok(fast.hint);
  t.match(fast.message, /\(2s > 1s\)/);
  t.match(problemAt(t, `${MINIMAL}health: { fast_interval: 2s }\n`, 'health.fast_interval').message, /\(2s > 1s\)/, 'against the default interval');
  t.equal(parseConfig(`${MINIMAL}health: { interval: 200ms }\n`, {}).health.fastInterval, 200, 'an unwritten fast_interval follows a shorter interval');
  t.equal(parseConfig(`${MINIMAL}health: { interval: 5s }\n`, {}).health.fastInterval, 250);
});

t.test('bind addresses', async (t) => {
  const bind = (value: string) => `listeners:\n  - { name: rw, bind: ${value}, route: primary }\n${BACKENDS}`;
  t.equal(problemAt(t, bind('"127.0.0.1:70000"'), 'listeners[0].bind').message, 'expected a port number from 1 to 65535, got 70000 in "127.0.0.1:70000"');
  t.match(problemAt(t, bind('"127.0.0.1:0"'), 'listeners[0].bind').message, /got 0 in/);
  t.match(problemAt(t, bind('"127.0.0.1"'), 'listeners[0].bind').hint, /add the port/);
  t.match(problemAt(t, bind('6432'), 'listeners[0].bind').hint, /127\.0\.0\.1:6432/);
  t.match(problemAt(t, bind('"::1:6432"'), 'listeners[0].bind').hint, /IPv6 addresses in brackets/);
  t.match(problemAt(t, bind('":6432"'), 'listeners[0].bind').hint, /0\.0\.0\.0:6432/);
  t.match(problemAt(t, bind('"127.0.0.1:port"'), 'listeners[0].bind').message, /expected a port number/);
  t.match(problemAt(t, bind('["::1"]'), 'listeners[0].bind').hint, /quote IPv6/);

  const yamlError = configError(t, `listeners:\n  - name: rw\n    bind: [::1]:6432\n    route: primary\n${BACKENDS}`);
  t.match(yamlError.problems[0]?.hint, /quote IPv6/, 'an unquoted IPv6 bind is a YAML error with a hint');

  t.match(problemAt(t, `${LISTENERS}backends:\n  - { name: pg1, host: "10.0.0.1:5432", port: 5432 }\n`, 'backends[0].host').hint, /put the port under `port:`/);
  t.match(problemAt(t, `${LISTENERS}backends:\n  - { name: pg1, host: "postgres://db", port: 5432 }\n`, 'backends[0].host').hint, /without a scheme/);
});

t.test('names and addresses must not collide', async (t) => {
  const listeners = configError(
    t,
    `listeners:
  - { name: rw, bind: "127.0.0.1:6432", route: primary }
  - { name: rw, bind: "127.0.0.1:6432", route: replica }
  - { name: all, bind: "0.0.0.0:6432", route: any }
${BACKENDS}`,
  );
  t.same(
    listeners.problems.map((p) => [p.path, p.message]),
    [
      ['listeners[1].name', 'duplicate name `rw`, already used by listeners[0]'],
      ['listeners[1].bind', '127.0.0.1:6432 overlaps listeners[0].bind 127.0.0.1:6432'],
      ['listeners[2].bind', '0.0.0.0:6432 overlaps listeners[0].bind 127.0.0.1:6432'],
    ],
  );

  const backends = problemAt(t, `${LISTENERS}backends:\n  - { name: pg1, host: a, port: 1 }\n  - { name: pg1, host: b, port: 1 }\n`, 'backends[1].name');
  t.equal(backends.message, 'duplicate name `pg1`, already used by backends[0]');

  const loop = problemAt(t, `listeners:\n  - { name: rw, bind: "127.0.0.1:5432", route: primary }\n${BACKENDS}`, 'listeners[0].bind');
  t.equal(loop.message, '127.0.0.1:5432 is the address of backend `pg1` (backends[0]); the proxy would connect to itself');
  t.ok(loop.hint);
  problemAt(t, `listeners:\n  - { name: rw, bind: "0.0.0.0:5432", route: primary }\n${BACKENDS}`, 'listeners[0].bind');
  problemAt(t, `listeners:\n  - { name: rw, bind: "localhost:5432", route: primary }\n${BACKENDS}`, 'listeners[0].bind');
  t.ok(parseConfig(`listeners:\n  - { name: rw, bind: "127.0.0.1:5432", route: primary }\nbackends:\n  - { name: pg1, host: 10.0.0.5, port: 5432 }\n`, {}), 'the same port on another host is fine');
  t.ok(parseConfig(`listeners:\n  - { name: pg1, bind: "127.0.0.1:6432", route: primary }\n${BACKENDS}`, {}), 'a listener may share a backend name');
});

t.test('fallback only on replica routes', async (t) => {
  const primary = problemAt(t, `listeners:\n  - { name: rw, bind: "127.0.0.1:6432", route: primary, fallback: primary }\n${BACKENDS}`, 'listeners[0].fallback');
  t.equal(primary.message, '`fallback` applies only to `route: replica`; this listener has `route: primary`');
  t.equal(primary.hint, 'remove `fallback`, or set `route: replica`');
  t.match(problemAt(t, `listeners:\n  - { name: a, bind: "127.0.0.1:6432", route: any, fallback: none }\n${BACKENDS}`, 'listeners[0].fallback').hint, /already includes the primary/);
  t.equal(parseConfig(`listeners:\n  - { name: ro, bind: "127.0.0.1:6433", route: replica, fallback: none }\n${BACKENDS}`, {}).listeners[0]?.fallback, 'none');
});

t.test('a tcp check needs a role on every backend and cannot limit lag', async (t) => {
  const text = `${LISTENERS}backends:
  - { name: pg1, host: h, port: 1, role: primary }
  - { name: pg2, host: h, port: 2 }
health: { check: tcp, max_replica_lag: 1MB }
`;
  const error = configError(t, text);
  t.same(error.problems.map((p) => p.path), ['backends[1].role', 'health.max_replica_lag']);
  t.match(error.problems[0]?.message, /required key is missing when `health.check` is `tcp`; expected `primary` or `replica`/);
  t.match(error.problems[0]?.hint, /cannot ask a server its role/);
  const roles = parseConfig(`${LISTENERS}backends:\n  - { name: pg1, host: h, port: 1, role: primary }\nhealth: { check: tcp }\n`, {});
  t.equal(roles.backends[0]?.role, 'primary');
  t.equal(parseConfig(`${LISTENERS}backends:\n  - { name: pg1, host: h, port: 1, role: replica }\n`, {}).backends[0]?.role, 'replica', 'allowed (and ignored) with a postgres check');
});

t.test('every problem is reported in one pass, in file order, with lines', async (t) => {
  const error = configError(
    t,
    `listeners:
  - { name: rw, bind: "127.0.0.1:70000", route: master }
  - { name: rw, bind: "127.0.0.1:6433", route: primary, fallback: primary }
backends:
  - { name: pg1, host: 127.0.0.1, port: 0, weight: 5000 }
health:
  intervall: 1s
  rise: 0
  password_env: NOT_SET_ANYWHERE
failover: { queue_size: -1 }
`,
  );
  t.equal(error.code, 'PGW_CONFIG_INVALID');
  t.same(
    error.problems.map((p) => [p.line, p.path]),
    [
      [2, 'listeners[0].bind'],
      [2, 'listeners[0].route'],
      [3, 'listeners[1].name'],
      [3, 'listeners[1].fallback'],
      [5, 'backends[0].port'],
      [5, 'backends[0].weight'],
      [7, 'health.intervall'],
      [8, 'health.rise'],
      [9, 'health.password_env'],
      [10, 'failover.queue_size'],
    ],
  );

  const text = error.format();
  const lines = text.split('\n');
  t.equal(lines[0], 'invalid configuration test.yaml (10 problems):');
  t.equal(lines.length, 11, 'a header and one line per problem');
  t.match(lines[1], /^ {2}test\.yaml:2:\d+: listeners\[0\]\.bind: expected a port number/);
  t.match(text, /test\.yaml:7:3: unknown key `health\.intervall` — did you mean `interval`\?\n/);
  t.match(text, /\(hint: export NOT_SET_ANYWHERE=/);
  t.notMatch(text, /\n\s+at /, 'no stack trace');
  t.equal(error.message, text);
});

t.test('YAML syntax errors carry line and column', async (t) => {
  const error = configError(t, `${MINIMAL}health:\n  interval: [1s\n`);
  t.equal(error.code, 'PGW_CONFIG_INVALID');
  const problem = error.problems[0];
  t.match(problem?.message, /^invalid YAML: /);
  t.notMatch(problem?.message, /\n/, 'one line');
  t.equal(typeof problem?.line, 'number');
  t.equal(typeof problem?.column, 'number');

  t.match(configError(t, `${MINIMAL}---\n${MINIMAL}`).problems[0]?.message, /more than one document/);
  const bomb = ['a: &a [x, x, x, x, x, x, x, x, x]', 'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]', 'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]', 'd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]'];
  t.match(configError(t, bomb.join('\n')).problems[0]?.message, /^invalid YAML: Excessive alias count/, 'alias bombs are refused');

  const duplicate = configError(t, `${MINIMAL}health:\n  rise: 1\n  rise: 2\n`);
  t.match(duplicate.problems[0]?.message, /unique/);
  t.equal(duplicate.problems[0]?.line, 7, 'the second `rise`');
});

t.test('loadConfigFile: unreadable files', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pgwarden-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));

  const load = (path: string): ConfigError => {
    try {
      loadConfigFile(path, {});
    } catch (e) {
      if (e instanceof ConfigError) return e;
      throw e;
    }
    t.fail('expected a ConfigError');
    return new ConfigError('PGW_CONFIG_INVALID', path, []);
  };
  const missing = load(join(dir, 'nope.yaml'));
  t.equal(missing.code, 'PGW_CONFIG_UNREADABLE');
  t.equal(missing.problems[0]?.message, 'no such file');
  t.match(missing.format(), /^cannot read configuration .*nope\.yaml:\n {2}no such file \(hint: check the path/);
  t.equal(load(dir).problems[0]?.message, 'is a directory, not a file');

  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, `${MINIMAL}health: { intervall: 1s }\n`);
  const invalid = load(bad);
  t.equal(invalid.code, 'PGW_CONFIG_INVALID');
  t.equal(invalid.source, bad);
  t.match(invalid.format(), `${bad}:5:`);
});

t.test('describeConfig lists what pgwarden would use and never the password', async (t) => {
  const config = loadConfigFile(EXAMPLE, ENV);
  const text = describeConfig(config);
  for (const expected of [
    /rw\s+127\.0\.0\.1:6432\s+route=primary\s+balance=roundrobin\s+fallback=none/,
    /ro\s+127\.0\.0\.1:6433\s+route=replica\s+balance=leastconn\s+fallback=primary/,
    /pg1\s+127\.0\.0\.1:5432\s+weight=100/,
    /pg3\s+127\.0\.0\.1:5434\s+weight=100\s+backup/,
    /health: postgres check/,
    /user: pgwarden/,
    /password: \(set\)/,
    /interval: 1s\s+fast_interval: 250ms\s+down_interval: 2s\s+timeout: 1s/,
    /rise: 2\s+fall: 2\s+jitter: 10%\s+max_replica_lag: 16MB/,
  ]) {
    t.match(text, expected);
  }
  t.notMatch(text, ENV.PGWARDEN_CHECK_PASSWORD);
  t.notMatch(text, / $/m, 'no trailing spaces');

  const tcp = describeConfig(
    parseConfig(`listeners:\n  - { name: v6, bind: "[::1]:6432", route: any }\nbackends:\n  - { name: a, host: "::1", port: 5432, role: primary }\nhealth: { check: tcp }\n`, {}),
  );
  t.match(tcp, /v6\s+\[::1\]:6432/);
  t.match(tcp, /a\s+\[::1\]:5432\s+weight=100\s+role=primary/);
  t.match(tcp, /health: tcp check/);
  t.match(describeConfig(parseConfig(MINIMAL, {})), /password: \(none\)/);
  t.match(describeConfig(parseConfig(MINIMAL, {})), /max_replica_lag: no limit/);
});

t.test('health.agent: optional, port required, defaults for the rest', async (t) => {
  t.same(parseConfig(`${MINIMAL}health: { agent: { port: 5555 } }\n`, {}).health.agent, { port: 5555, interval: 2_000, timeout: 1_000 });
  t.same(parseConfig(`${MINIMAL}health: { agent: { port: 5555, interval: 500ms, timeout: 200 } }\n`, {}).health.agent, { port: 5555, interval: 500, timeout: 200 });

  const missing = problemAt(t, `${MINIMAL}health:\n  agent:\n`, 'health.agent.port');
  t.equal(missing.message, 'required key is missing; expected a port number from 1 to 65535');
  t.equal(missing.line, 6, 'points at the empty `agent:`');
  t.match(problemAt(t, `${MINIMAL}health: { agent: { port: "5555" } }\n`, 'health.agent.port').hint, /without quotes/);
  t.match(problemAt(t, `${MINIMAL}health: { agent: { port: 5555, interval: 0 } }\n`, 'health.agent.interval').message, /longer than 0/);
  t.equal(problemAt(t, `${MINIMAL}health: { agent: { port: 5555, prot: 1 } }\n`, 'health.agent.prot').message, 'unknown key `health.agent.prot` — did you mean `port`?');

  const clash = problemAt(t, `${MINIMAL}health: { agent: { port: 5432 } }\n`, 'health.agent.port');
  t.equal(clash.message, '5432 is the PostgreSQL port of backends[0]; the agent check would talk to PostgreSQL');
  t.match(clash.hint, /port of its own/);
});

t.test('health.patroni: REST port and scheme, interval and timeout from health, optional DCS', async (t) => {
  t.notOk('patroni' in parseConfig(MINIMAL, {}).health, 'no Patroni unless configured');
  t.same(parseConfig(`${MINIMAL}health: { interval: 2s, timeout: 500ms, patroni: }\n`, {}).health.patroni, { port: 8008, scheme: 'http', interval: 2_000, timeout: 500 }, 'an empty `patroni:` is on with every default');
  const full = parseConfig(
    `${MINIMAL}health: { patroni: { port: 8009, scheme: https, ca_file: /ca.pem, interval: 500ms, timeout: 300ms, dcs: { scope: main, namespace: /service/, etcd: { endpoints: [http://10.0.0.9:2379], user: pgw, password_env: ETCD_PW } } } }\n`,
    { ETCD_PW: 'etcd-pw-7' },
  ).health.patroni;
  t.same(full, {
    port: 8009,
    scheme: 'https',
    caFile: '/ca.pem',
    interval: 500,
    timeout: 300,
    dcs: { namespace: '/service', scope: 'main', etcd: { endpoints: ['http://10.0.0.9:2379'], timeout: 1_000, user: 'pgw', password: 'etcd-pw-7' } },
  });
  t.equal(parseConfig(`${LISTENERS}backends:\n  - { name: pg1, host: 127.0.0.1, port: 5432, patroni_port: 8010 }\nhealth: { patroni: {} }\n`, {}).backends[0]!.patroniPort, 8010);

  const scope = problemAt(t, `${MINIMAL}health: { patroni: { dcs: { etcd: { endpoints: [http://e:2379] } } } }\n`, 'health.patroni.dcs.scope');
  t.match(scope.message, /required key is missing; expected Patroni's `scope`/);
  t.match(problemAt(t, `${MINIMAL}health: { patroni: { dcs: { scope: main } } }\n`, 'health.patroni.dcs.etcd.endpoints').message, 'at least one endpoint is required');
  t.match(problemAt(t, `${MINIMAL}health: { patroni: { scheme: ftp } }\n`, 'health.patroni.scheme').message, /http/);
  t.equal(problemAt(t, `${MINIMAL}health: { patroni: { prot: 8008 } }\n`, 'health.patroni.prot').message, 'unknown key `health.patroni.prot` — did you mean `port`?');
  t.match(problemAt(t, `${MINIMAL}health: { patroni: { dcs: { scope: main, etcd: { endpoints: [http://e:2379], password: x } } } }\n`, 'health.patroni.dcs.etcd.password').hint, /password_env/);

  const clash = problemAt(t, `${MINIMAL}health: { patroni: { port: 5432 } }\n`, 'health.patroni.port');
  t.equal(clash.message, "5432 is the PostgreSQL port of `pg1` (backends[0]); pgwarden would ask PostgreSQL for Patroni's REST API");
  t.match(clash.hint, /patroni_port/);
  const own = problemAt(t, `${LISTENERS}backends:\n  - { name: pg1, host: 127.0.0.1, port: 5432, patroni_port: 5432 }\nhealth: { patroni: {} }\n`, 'backends[0].patroni_port');
  t.match(own.message, /PostgreSQL port of `pg1`/);
  const alone = problemAt(t, `${LISTENERS}backends:\n  - { name: pg1, host: 127.0.0.1, port: 5432, patroni_port: 8008 }\n`, 'backends[0].patroni_port');
  t.equal(alone.message, 'applies only with `health.patroni`');
  t.match(alone.hint, /health: \{ patroni:/);
  t.match(problemAt(t, `${MINIMAL}health: { patroni: { ca_file: /ca.pem } }\n`, 'health.patroni.ca_file').message, 'applies only to `scheme: https`');

  const etcd = (inner: string) => `${MINIMAL}health: { patroni: { dcs: { scope: main, etcd: { ${inner} } } } }\n`;
  t.match(problemAt(t, etcd('endpoints: [http://a:2379, https://b:2379]'), 'health.patroni.dcs.etcd.endpoints').message, 'mixes http:// and https://');
  t.match(problemAt(t, etcd('endpoints: [http://a:2379], tls: { ca_file: /ca.pem }'), 'health.patroni.dcs.etcd.tls').message, 'applies only to https:// endpoints');
  t.match(problemAt(t, etcd('endpoints: [https://a:2379], tls: { cert_file: /c.pem }'), 'health.patroni.dcs.etcd.tls.key_file').message, 'required key is missing');
  t.equal(problemAt(t, etcd('endpoints: [http://a:2379], password_env: ETCD_PW'), 'health.patroni.dcs.etcd.password_env', { ETCD_PW: 'x' }).message, 'needs `user` beside it');
  t.equal(problemAt(t, etcd('endpoints: [http://a:2379], user: u, password_env: ETCD_PW'), 'health.patroni.dcs.etcd.password_env').message, 'environment variable `ETCD_PW` is not set');

  const described = describeConfig(parseConfig(`${LISTENERS}backends:\n  - { name: pg1, host: 127.0.0.1, port: 5432, patroni_port: 8010 }\nhealth: { patroni: { dcs: { scope: main, etcd: { endpoints: [http://e:2379] } } } }\n`, {}));
  t.match(described, /patroni_port=8010/);
  t.match(described, /patroni: http:\/\/<backend host>:8008\/patroni\s+interval: 1s\s+timeout: 1s/);
  t.match(described, /dcs: etcd http:\/\/e:2379\s+key: \/service\/main\/failover/);
  t.notMatch(describeConfig(parseConfig(MINIMAL, {})), /patroni/);
});

t.test('failover: mode, on_down and the promote and switchover limits', async (t) => {
  const config = parseConfig(`${MINIMAL}failover: { mode: promote, on_down: keep, promote_after: 10s, max_lag_on_failover: 1GB, drain_timeout: 0 }\n`, {});
  t.same(config.failover, { queueTimeout: 30_000, queueSize: 1_000, mode: 'promote', onDown: 'keep', promoteAfter: 10_000, maxLagOnFailover: 1024 ** 3, drainTimeout: 0, watchInterval: 50 });
  t.equal(parseConfig(`${MINIMAL}failover: { promote_after: 1s }\n`, {}).failover.promoteAfter, 1_000, 'promote_after is accepted (and unused) in follow mode');
  t.equal(parseConfig(`${MINIMAL}failover: { max_lag_on_failover: 0 }\n`, {}).failover.maxLagOnFailover, 0);

  const mode = problemAt(t, `${MINIMAL}failover: { mode: auto }\n`, 'failover.mode');
  t.equal(mode.message, 'expected one of `follow`, `promote`, got "auto"');
  t.equal(mode.hint, 'did you mean `promote`?');
  const onDown = problemAt(t, `${MINIMAL}failover: { on_down: shutdown_sessions }\n`, 'failover.on_down');
  t.equal(onDown.message, 'expected one of `shutdown-sessions`, `keep`, got "shutdown_sessions"');
  t.equal(onDown.hint, 'did you mean `shutdown-sessions`?');

  const lag = problemAt(t, `${MINIMAL}failover: { max_lag_on_failover: 10s }\n`, 'failover.max_lag_on_failover');
  t.match(lag.message, /unknown size unit `s`/);
  t.match(lag.hint, /a size \(bytes of WAL\), not a time/);
  t.match(problemAt(t, `${MINIMAL}failover: { max_lag_on_failover: 16mb }\n`, 'failover.max_lag_on_failover').hint, /16MB/);
  t.match(problemAt(t, `${MINIMAL}failover: { drain_timeout: -1s }\n`, 'failover.drain_timeout').message, /must not be negative/);
  t.equal(problemAt(t, `${MINIMAL}failover: { promote_afer: 1s }\n`, 'failover.promote_afer').message, 'unknown key `failover.promote_afer` — did you mean `promote_after`?');

  const tcp = problemAt(t, `${LISTENERS}backends:\n  - { name: pg1, host: h, port: 1, role: primary }\nhealth: { check: tcp }\nfailover: { mode: promote }\n`, 'failover.mode');
  t.equal(tcp.message, '`promote` needs `health.check: postgres`');
  t.match(tcp.hint, /cannot see which server is primary/);
});

t.test('hooks: a list of commands per event', async (t) => {
  const config = parseConfig(
    `${MINIMAL}hooks:
  pre_switchover:
    - command: [/bin/check, --strict]
  post_switchover:
    - command: [config/hooks/backup-new-primary.sh]
      timeout: 10m
      env: { BACKUP_DIR: /var/backups/pgwarden, KEEP: "3" }
    - command: [sh, -c, 'echo "$PGWARDEN_EVENT" >> /tmp/events']
  on_primary_change:
    - command: [config/hooks/backup-new-primary.sh]
`,
    {},
  );
  t.same(config.hooks, {
    pre_switchover: [{ command: ['/bin/check', '--strict'], timeout: 60_000, env: {} }],
    post_switchover: [
      { command: ['config/hooks/backup-new-primary.sh'], timeout: 600_000, env: { BACKUP_DIR: '/var/backups/pgwarden', KEEP: '3' } },
      { command: ['sh', '-c', 'echo "$PGWARDEN_EVENT" >> /tmp/events'], timeout: 60_000, env: {} },
    ],
    on_primary_change: [{ command: ['config/hooks/backup-new-primary.sh'], timeout: 60_000, env: {} }],
  });

  const event = problemAt(t, `${MINIMAL}hooks: { post_swithcover: [] }\n`, 'hooks.post_swithcover');
  t.equal(event.message, 'unknown key `hooks.post_swithcover` — did you mean `post_switchover`?');
  t.match(problemAt(t, `${MINIMAL}hooks: { on_switch: [] }\n`, 'hooks.on_switch').hint, /valid keys here: pre_switchover, post_switchover, on_promote, on_primary_change, on_backend_down, on_backend_up, on_fence/);

  const shell = problemAt(t, `${MINIMAL}hooks:\n  post_switchover:\n    - command: /usr/local/bin/backup.sh --full\n`, 'hooks.post_switchover[0].command');
  t.equal(shell.message, 'expected a list of strings: the program, then its arguments, got "/usr/local/bin/backup.sh --full"');
  t.equal(shell.hint, 'write it as a list: ["/path/script.sh", "arg"] — no shell is used; use [sh, -c, \'...\'] for one');
  t.equal(shell.line, 7);

  t.equal(problemAt(t, `${MINIMAL}hooks: { on_fence: [{ timeout: 1s }] }\n`, 'hooks.on_fence[0].command').message, 'required key is missing; expected a list of strings: the program, then its arguments');
  t.equal(problemAt(t, `${MINIMAL}hooks: { on_fence: [{ command: [] }] }\n`, 'hooks.on_fence[0].command').message, 'the list is empty; expected at least the program to run');
  const number = problemAt(t, `${MINIMAL}hooks: { on_fence: [{ command: [sleep, 5] }] }\n`, 'hooks.on_fence[0].command[1]');
  t.equal(number.message, 'expected a non-empty string, got 5');
  t.match(number.hint, /quotes/);
  t.match(problemAt(t, `${MINIMAL}hooks: { on_fence: [{ command: [x], timeout: 0 }] }\n`, 'hooks.on_fence[0].timeout').message, /longer than 0/);
  const typo = problemAt(t, `${MINIMAL}hooks: { on_fence: [{ command: [x], timout: 1s }] }\n`, 'hooks.on_fence[0].timout');
  t.equal(typo.message, 'unknown key `hooks.on_fence[0].timout` — did you mean `timeout`?');

  const mapping = problemAt(t, `${MINIMAL}hooks:\n  on_fence:\n    command: [x]\n`, 'hooks.on_fence');
  t.equal(mapping.message, 'expected a list of hooks, got a mapping');
  t.match(mapping.hint, /start each hook with `- `/);
  t.match(problemAt(t, `${MINIMAL}hooks: [x]\n`, 'hooks').message, /expected a mapping with keys `pre_switchover`/);
});

t.test('hook environments: names and text values, values never shown', async (t) => {
  const env = (value: string) => `${MINIMAL}hooks: { on_fence: [{ command: [x], env: ${value} }] }\n`;
  const number = problemAt(t, env('{ KEEP: 3 }'), 'hooks.on_fence[0].env.KEEP');
  t.equal(number.message, 'expected text, got a number');
  t.equal(number.hint, 'environment values are text; put the value in quotes: KEEP: "..."');
  const secret = configError(t, env('{ PGPASSWORD: 918273645 }'));
  t.notMatch(secret.format(), /918273645/, 'a mistyped value may be a credential');
  t.equal(problemAt(t, env('{ ON: true }'), 'hooks.on_fence[0].env.ON').message, 'expected text, got a boolean');
  t.equal(problemAt(t, env('{ LIST: [a] }'), 'hooks.on_fence[0].env.LIST').message, 'expected text, got a list');
  t.match(problemAt(t, env('{ 1ST: a }'), 'hooks.on_fence[0].env.1ST').message, /is not an environment variable name/);
  t.match(problemAt(t, env('[A=1]'), 'hooks.on_fence[0].env').message, /expected a mapping of variable names to values, got a list/);
});

t.test('admin: optional; bind, and a token from the file or the environment', async (t) => {
  t.same(parseConfig(`${MINIMAL}admin:\n`, {}).admin, { host: '127.0.0.1', port: 8404 }, 'an empty section turns the API on with defaults');
  t.same(parseConfig(`${MINIMAL}admin: { bind: "[::1]:9000", token: "0123" }\n`, {}).admin, { host: '::1', port: 9000, token: '0123' });
  t.same(parseConfig(`${MINIMAL}admin: { token_env: ADMIN_TOKEN }\n`, { ADMIN_TOKEN: 'tok-from-env' }).admin, { host: '127.0.0.1', port: 8404, token: 'tok-from-env' });

  const both = problemAt(t, `${MINIMAL}admin: { token: a-token-77, token_env: ADMIN_TOKEN }\n`, 'admin.token_env', { ADMIN_TOKEN: 'b' });
  t.equal(both.message, 'set either `token` or `token_env`, not both');
  t.notMatch(configError(t, `${MINIMAL}admin: { token: a-token-77, token_env: ADMIN_TOKEN }\n`, { ADMIN_TOKEN: 'b' }).format(), /a-token-77/);

  const unset = problemAt(t, `${MINIMAL}admin: { token_env: ADMIN_TOKEN }\n`, 'admin.token_env');
  t.equal(unset.message, 'environment variable `ADMIN_TOKEN` is not set');
  t.match(unset.hint, /^export ADMIN_TOKEN=.*refuses every change/);
  t.match(problemAt(t, `${MINIMAL}admin: { token_env: ADMIN_TOKEN }\n`, 'admin.token_env', { ADMIN_TOKEN: '' }).message, /set but empty/);
  t.match(problemAt(t, `${MINIMAL}admin: { token_env: $ADMIN_TOKEN }\n`, 'admin.token_env').hint, /without `\$`: ADMIN_TOKEN/);

  const number = configError(t, `${MINIMAL}admin: { token: 8675309123 }\n`);
  t.equal(number.problems[0]?.message, 'expected a token (in quotes if it looks like a number), got a number');
  t.match(number.problems[0]?.hint, /quotes/);
  t.notMatch(number.format(), /8675309123/, 'a token that YAML reads as a number is still not shown');
  t.notMatch(configError(t, `${MINIMAL}health: { password: 5550123 }\n`).format(), /5550123/, 'nor is such a password');
  t.match(problemAt(t, `${MINIMAL}admin: { token: "" }\n`, 'admin.token').message, /got an empty string/);
  t.equal(problemAt(t, `${MINIMAL}admin: { tokn: x }\n`, 'admin.tokn').message, 'unknown key `admin.tokn` — did you mean `token`?');
  t.match(problemAt(t, `${MINIMAL}admin: { bind: 8404 }\n`, 'admin.bind').hint, /127\.0\.0\.1:8404/);

  const listener = problemAt(t, `${MINIMAL}admin: { bind: "0.0.0.0:6432" }\n`, 'admin.bind');
  t.equal(listener.message, '0.0.0.0:6432 overlaps listeners[0].bind 127.0.0.1:6432');
  t.match(listener.hint, /port of its own/);
  const backend = problemAt(t, `${MINIMAL}admin: { bind: "localhost:5432" }\n`, 'admin.bind');
  t.equal(backend.message, 'localhost:5432 is the address of backend `pg1` (backends[0])');
  t.match(problemAt(t, `listeners:\n  - { name: rw, bind: "127.0.0.1:8404", route: primary }\n${BACKENDS}admin:\n`, 'admin.bind').message, /overlaps listeners\[0\]\.bind/, 'the default bind is checked too');
});

t.test('host: sampling interval and cpu/memory/disk thresholds', async (t) => {
  const config = parseConfig(`${MINIMAL}host: { interval: 10s, thresholds: { cpu: 80%, memory: { above: 85.5, for: 0 }, disk: 90 } }\n`, {});
  t.same(config.host, { interval: 10_000, thresholds: { cpu: { above: 80, for: 30_000 }, memory: { above: 85.5, for: 0 }, disk: { above: 90, for: 30_000 } } });
  t.same(parseConfig(`${MINIMAL}host: { thresholds: { disk: { above: 100% } } }\n`, {}).host.thresholds, { disk: { above: 100, for: 30_000 } });

  const fraction = problemAt(t, `${MINIMAL}host: { thresholds: { cpu: 0.8 } }\n`, 'host.thresholds.cpu.above');
  t.equal(fraction.message, 'must be from 1% to 100%, got 0.8');
  t.equal(fraction.hint, 'for 80 percent write `80%`');
  t.match(problemAt(t, `${MINIMAL}host: { thresholds: { memory: { above: 150% } } }\n`, 'host.thresholds.memory.above').message, /from 1% to 100%, got "150%"/);
  t.equal(problemAt(t, `${MINIMAL}host: { thresholds: { disk: "90" } }\n`, 'host.thresholds.disk.above').hint, 'write `90%`');
  t.match(problemAt(t, `${MINIMAL}host: { thresholds: { cpu: { for: 1m } } }\n`, 'host.thresholds.cpu.above').message, /required key is missing; expected a percentage/);
  t.match(problemAt(t, `${MINIMAL}host: { thresholds: { cpu: { above: 80%, for: 1x } } }\n`, 'host.thresholds.cpu.for').message, /unknown duration unit/);
  t.equal(problemAt(t, `${MINIMAL}host: { thresholds: { cpu: { abov: 80% } } }\n`, 'host.thresholds.cpu.abov').message, 'unknown key `host.thresholds.cpu.abov` — did you mean `above`?');

  const network = problemAt(t, `${MINIMAL}host: { thresholds: { network: 50% } }\n`, 'host.thresholds.network');
  t.equal(network.message, 'unknown key `host.thresholds.network`');
  t.equal(network.hint, 'valid keys here: cpu, memory, disk');
  t.match(problemAt(t, `${MINIMAL}host: { thresholds: { mem: 50% } }\n`, 'host.thresholds.mem').message, /did you mean `memory`\?/);
  t.match(problemAt(t, `${MINIMAL}host: { interval: 0 }\n`, 'host.interval').message, /longer than 0/);
  t.equal(problemAt(t, `${MINIMAL}above: 80%\n`, 'above').hint, '`above` belongs under `host.thresholds.<metric>`');
});

t.test('logging.format: json or pretty', async (t) => {
  t.equal(parseConfig(`${MINIMAL}logging: { format: pretty }\n`, {}).logging.format, 'pretty');
  const text = problemAt(t, `${MINIMAL}logging: { format: text }\n`, 'logging.format');
  t.equal(text.message, 'expected one of `json`, `pretty`, got "text"');
  t.equal(text.hint, 'did you mean `pretty`?');
});

t.test('describeConfig shows failover, agent, hooks, admin and host, never the token', async (t) => {
  const token = 'admin-token-value-93';
  const config = parseConfig(
    `${MINIMAL}health: { agent: { port: 5555 } }
failover: { mode: promote, on_down: keep, promote_after: 3s, max_lag_on_failover: 1MB }
hooks:
  post_switchover:
    - { command: [backup.sh, "two words"], env: { PGPASSWORD: hook-secret-12 } }
    - { command: [notify], timeout: 5s }
admin: { bind: "127.0.0.1:9000", token: ${token} }
host: { thresholds: { cpu: 80%, disk: { above: 90%, for: 1m } } }
logging: { format: pretty }
`,
    {},
  );
  const text = describeConfig(config);
  for (const expected of [
    /agent: port 5555\s+interval: 2s\s+timeout: 1s/,
    /failover: mode: promote\s+on_down: keep\s+drain_timeout: 10s/,
    /after 3s .* more than 1MB behind/,
    /post_switchover: backup\.sh "two words"\s+\(timeout 1m, env PGPASSWORD\)\n\s+notify\s+\(timeout 5s\)/,
    /admin: 127\.0\.0\.1:9000\s+token: \(set\)/,
    /thresholds: cpu above 80% for 30s, disk above 90% for 1m/,
    /logging: info \(pretty\)/,
  ]) {
    t.match(text, expected);
  }
  t.notMatch(text, token, 'the admin token is never printed');
  t.notMatch(text, 'hook-secret-12', 'hook environment values are never printed');
  t.notMatch(text, / $/m, 'no trailing spaces');

  const minimal = describeConfig(parseConfig(MINIMAL, {}));
  t.match(minimal, /agent: none/);
  t.match(minimal, /failover: mode: follow\s+on_down: shutdown-sessions/);
  t.match(minimal, /hooks: none/);
  t.match(minimal, /admin: off/);
  t.match(minimal, /thresholds: none/);
  const noToken = describeConfig(parseConfig(`${MINIMAL}admin:\n`, {}));
  t.match(noToken, /admin: 127\.0\.0\.1:8404\s+token: \(none\)\n\s+warning: without a token the admin API refuses every change/);
});

const COORDINATION = `coordination:
  name: b
  members: [a, b, c]
  ttl: 15s
  on_etcd_loss: readonly
  etcd:
    endpoints: [https://10.0.0.1:2379, "HTTPS://Etcd-2.example.com:2379/", "https://[fd00::3]:2379"]
    prefix: /pgwarden/main/
    timeout: 500ms
    user: pgwarden
    password_env: ETCD_PASSWORD
    tls: { ca_file: /etc/pgwarden/ca.pem, cert_file: /etc/pgwarden/client.pem, key_file: /etc/pgwarden/client.key }
`;

/** A coordination section with `etcd` as given and valid name and members. */
function coordinationWith(etcd: string, extra = ''): string {
  return `${MINIMAL}coordination:\n  name: a\n  members: [a, b]\n${extra}  etcd: ${etcd}\n`;
}

t.test('coordination: a full section parses into the contract', async (t) => {
  const config = parseConfig(`${MINIMAL}${COORDINATION}`, { ETCD_PASSWORD: 'etcd-secret-9' });
  t.strictSame(config.coordination, {
    name: 'b',
    members: ['a', 'b', 'c'],
    ttl: 15_000,
    onEtcdLoss: 'readonly',
    etcd: {
      endpoints: ['https://10.0.0.1:2379', 'https://etcd-2.example.com:2379', 'https://[fd00::3]:2379'],
      prefix: '/pgwarden/main',
      timeout: 500,
      user: 'pgwarden',
      password: 'etcd-secret-9',
      tls: { caFile: '/etc/pgwarden/ca.pem', certFile: '/etc/pgwarden/client.pem', keyFile: '/etc/pgwarden/client.key' },
    },
  });
  const c = config.coordination!;
  for (const part of [c, c.members, c.etcd, c.etcd.endpoints, c.etcd.tls]) t.ok(Object.isFrozen(part));
});

t.test('coordination: absent means no key; the rest has defaults', async (t) => {
  t.notOk('coordination' in parseConfig(MINIMAL, {}), 'no coordination unless configured');
  t.strictSame(parseConfig(coordinationWith('{ endpoints: [http://127.0.0.1:2379] }'), {}).coordination, {
    name: 'a',
    members: ['a', 'b'],
    ttl: 10_000,
    onEtcdLoss: 'keep',
    etcd: { endpoints: ['http://127.0.0.1:2379'], prefix: '/pgwarden', timeout: 1_000 },
  });
  const tls = parseConfig(coordinationWith('{ endpoints: [https://e:2379], tls: , prefix: /a/b }'), {}).coordination?.etcd;
  t.notOk(tls !== undefined && 'tls' in tls, 'an empty `tls:` adds nothing (https:// with the system CAs)');
  t.equal(tls?.prefix, '/a/b');
  t.equal(parseConfig(coordinationWith('{ endpoints: [https://e:2379], tls: { ca_file: ca.pem } }'), {}).coordination?.etcd.tls?.caFile, 'ca.pem', 'a CA alone is fine');
  t.equal(parseConfig(coordinationWith('{ endpoints: [http://e:2379], user: root }'), {}).coordination?.etcd.user, 'root', 'a user without a password is fine');
  t.equal(parseConfig(coordinationWith('{ endpoints: [http://e:2379], timeout: 666ms }', '  ttl: 2s\n'), {}).coordination?.etcd.timeout, 666);

  const empty = configError(t, `${MINIMAL}coordination:\n`);
  t.same(empty.problems.map((p) => [p.path, p.message]), [
    ['coordination.name', 'required key is missing; expected a name of letters, digits, `_`, `.` or `-` (at most 63 characters)'],
    ['coordination.members', 'at least one member is required'],
    ['coordination.etcd.endpoints', 'at least one endpoint is required'],
  ]);
  t.equal(empty.problems[2]?.hint, 'for example: `endpoints: [http://127.0.0.1:2379]`');
});

t.test('coordination.advertise: a host other instances reach; never a wildcard', async (t) => {
  const at = (advertise: string) => `${MINIMAL}coordination: { name: a, members: [a, b], advertise: "${advertise}", etcd: { endpoints: [http://e:2379] } }\n`;
  t.equal(parseConfig(at('10.0.0.1'), {}).coordination?.advertise, '10.0.0.1');
  t.equal(parseConfig(at('pgw1.example.com'), {}).coordination?.advertise, 'pgw1.example.com');
  t.equal(parseConfig(at('[fd00::1]'), {}).coordination?.advertise, 'fd00::1');
  t.notOk('advertise' in parseConfig(coordinationWith('{ endpoints: [http://e:2379] }'), {}).coordination!, 'absent: no key');
  for (const wildcard of ['0.0.0.0', '::', '[::]']) {
    const p = problemAt(t, at(wildcard), 'coordination.advertise');
    t.match(p.message, /is a wildcard address .*; expected the address the other instances reach this one at/, wildcard);
    t.match(p.hint, /this host's own address/);
  }
  t.match(problemAt(t, at('http://pgw1:6432'), 'coordination.advertise').message, /expected a host name or IP address/);

  // `pgwarden check` shows it, and says when auth.mode proxy has wildcard listeners without it.
  const wild = (extra: string) =>
    describeConfig(
      parseConfig(
        `listeners:\n  - { name: rw, bind: "0.0.0.0:6432", route: primary }\n${BACKENDS}auth: { mode: proxy, user: pgwarden_auth, password_env: P }\ncoordination: { name: a, members: [a, b], ${extra}etcd: { endpoints: [http://e:2379] } }\n`,
        { P: 'x' },
      ),
    );
  t.match(wild(''), /warning: rw bind a wildcard and `advertise` is not set/);
  t.match(wild('advertise: 10.0.0.1, '), /advertise: 10\.0\.0\.1 \(where the others send cancels/);
  t.notMatch(wild('advertise: 10.0.0.1, '), /warning: rw bind a wildcard/);
});

t.test('coordination: this instance is one of the members, each listed once', async (t) => {
  const missing = problemAt(t, `${MINIMAL}coordination: { name: d, members: [a, b, c], etcd: { endpoints: [http://e:2379] } }\n`, 'coordination.name');
  t.equal(missing.message, '`d` is not one of `members` (a, b, c)');
  t.match(missing.hint, /add this instance to the list or correct its name/);

  const duplicate = problemAt(t, `${MINIMAL}coordination: { name: a, members: [a, b, a], etcd: { endpoints: [http://e:2379] } }\n`, 'coordination.members[2]');
  t.equal(duplicate.message, 'duplicate member `a`, already members[0]');
  t.match(duplicate.hint, /a quorum is a majority of this list/);

  t.match(problemAt(t, `${MINIMAL}coordination: { name: a, members: ["a b"], etcd: { endpoints: [http://e:2379] } }\n`, 'coordination.members[0]').message, /expected a name of letters/);
  const single = problemAt(t, `${MINIMAL}coordination: { name: a, members: a, etcd: { endpoints: [http://e:2379] } }\n`, 'coordination.members');
  t.equal(single.message, 'expected a list of members, got "a"');
  t.equal(single.hint, 'write it as a list: [a]');
  t.equal(problemAt(t, `${MINIMAL}coordination: { name: a, members: [], etcd: { endpoints: [http://e:2379] } }\n`, 'coordination.members').message, 'at least one member is required');
});

t.test('coordination: etcd endpoints are http(s) URLs with host and port', async (t) => {
  const endpoint = (url: string) => problemAt(t, coordinationWith(`{ endpoints: [${JSON.stringify(url)}] }`), 'coordination.etcd.endpoints[0]');
  const expected = 'expected an http:// or https:// URL with host and port, like `http://127.0.0.1:2379`';

  const scheme = endpoint('127.0.0.1:2379');
  t.equal(scheme.message, `${expected}, got "127.0.0.1:2379"`);
  t.equal(scheme.hint, 'add the scheme: `http://127.0.0.1:2379` (`https://` for TLS)');
  t.equal(endpoint('http://etcd1').hint, "add the port: `http://etcd1:2379` (etcd's client port is 2379)");
  t.match(endpoint('grpc://etcd1:2379').hint, /not `grpc:\/\/`/);
  t.match(endpoint('http://etcd1:2379/v3/kv').hint, /no path, query or fragment/);
  t.match(endpoint('http://etcd1:70000').message, /expected a port number from 1 to 65535, got 70000 in "http:\/\/etcd1:70000"/);
  t.match(endpoint('http://:2379').hint, /add the host/);
  t.match(endpoint('http://[nope]:2379').message, /got "http:\/\/\[nope\]:2379"/);
  const credentials = configError(t, coordinationWith('{ endpoints: ["http://root:etcd-pw-31@e:2379"] }'));
  t.match(credentials.problems[0]?.message, /got a URL with credentials in it/);
  t.match(credentials.problems[0]?.hint, /`user:`.*`password_env`/);
  t.notMatch(credentials.format(), /etcd-pw-31/, 'a password in a URL is not shown');

  const text = problemAt(t, coordinationWith('{ endpoints: http://e:2379 }'), 'coordination.etcd.endpoints');
  t.equal(text.hint, 'write it as a list: [http://e:2379]');

  const mixed = problemAt(t, coordinationWith('{ endpoints: [http://e1:2379, https://e2:2379] }'), 'coordination.etcd.endpoints');
  t.equal(mixed.message, 'mixes http:// and https:// endpoints');
  t.match(mixed.hint, /one kind of connection/);

  const self = problemAt(t, coordinationWith('{ endpoints: [http://e:2379, http://localhost:6432] }'), 'coordination.etcd.endpoints[1]');
  t.equal(self.message, 'http://localhost:6432 is the address of listener `rw` (listeners[0]), not of etcd');
  t.match(self.hint, /2379/);
  t.match(problemAt(t, `${coordinationWith('{ endpoints: [http://127.0.0.1:8404] }')}admin:\n`, 'coordination.etcd.endpoints[0]').message, /is the address of the admin API/);
  t.ok(parseConfig(coordinationWith('{ endpoints: [http://10.0.0.9:6432] }'), {}), "another host on a listener's port is fine");
});

t.test('coordination: ttl, timeout and prefix', async (t) => {
  const short = problemAt(t, coordinationWith('{ endpoints: [http://e:2379] }', '  ttl: 1s\n'), 'coordination.ttl');
  t.equal(short.message, 'must be at least 2s, got "1s"');
  t.match(short.hint, /shorter than 2s can expire between two renewals/);
  const fraction = problemAt(t, coordinationWith('{ endpoints: [http://e:2379] }', '  ttl: 2500ms\n'), 'coordination.ttl');
  t.equal(fraction.message, 'must be a whole number of seconds, got "2500ms"');
  t.equal(fraction.hint, 'etcd grants leases in whole seconds: write `2s` or `3s`');

  const timeout = problemAt(t, coordinationWith('{ endpoints: [http://e:2379], timeout: 2s }', '  ttl: 6s\n'), 'coordination.etcd.timeout');
  t.equal(timeout.message, 'must be less than a third of `coordination.ttl` (2s, ttl 6s)');
  t.match(timeout.hint, /renewed every ttl\/3 \(2s here\).*lower `timeout` or raise `ttl`/);
  t.match(problemAt(t, coordinationWith('{ endpoints: [http://e:2379] }', '  ttl: 2s\n'), 'coordination.etcd.timeout').message, /\(1s, ttl 2s\)/, 'against the default timeout');
  t.match(problemAt(t, coordinationWith('{ endpoints: [http://e:2379], timeout: 0 }'), 'coordination.etcd.timeout').message, /longer than 0/);

  const prefix = problemAt(t, coordinationWith('{ endpoints: [http://e:2379], prefix: pgwarden }'), 'coordination.etcd.prefix');
  t.equal(prefix.message, 'expected a key prefix starting with `/`, like `/pgwarden`, got "pgwarden"');
  t.equal(prefix.hint, 'write `/pgwarden`');
  t.match(problemAt(t, coordinationWith('{ endpoints: [http://e:2379], prefix: / }'), 'coordination.etcd.prefix').hint, /a prefix of their own/);

  const loss = problemAt(t, coordinationWith('{ endpoints: [http://e:2379] }', '  on_etcd_loss: read-only\n'), 'coordination.on_etcd_loss');
  t.equal(loss.message, 'expected one of `keep`, `readonly`, got "read-only"');
  t.equal(loss.hint, 'did you mean `readonly`?');
});

t.test('coordination: the etcd password comes from the environment, with a user', async (t) => {
  const noUser = problemAt(t, coordinationWith('{ endpoints: [http://e:2379], password_env: ETCD_PASSWORD }'), 'coordination.etcd.password_env', { ETCD_PASSWORD: 'x' });
  t.equal(noUser.message, 'needs `user` beside it');
  t.match(noUser.hint, /set `user`, or remove `password_env`/);

  const unset = problemAt(t, coordinationWith('{ endpoints: [http://e:2379], user: u, password_env: ETCD_PASSWORD }'), 'coordination.etcd.password_env');
  t.equal(unset.message, 'environment variable `ETCD_PASSWORD` is not set');
  t.match(unset.hint, /^export ETCD_PASSWORD=\.\.\. before starting pgwarden/);
  t.match(problemAt(t, coordinationWith('{ endpoints: [http://e:2379], user: u, password_env: ETCD_PASSWORD }'), 'coordination.etcd.password_env', { ETCD_PASSWORD: '' }).message, /set but empty/);

  const inline = problemAt(t, coordinationWith('{ endpoints: [http://e:2379], user: u, password: etcd-pw-77 }'), 'coordination.etcd.password');
  t.equal(inline.message, 'unknown key `coordination.etcd.password`');
  t.equal(inline.hint, 'the etcd password is read only from the environment: name its variable in `password_env`');
});

t.test('coordination: tls files go with https:// and come as a pair', async (t) => {
  const noKey = problemAt(t, coordinationWith('{ endpoints: [https://e:2379], tls: { cert_file: c.pem } }'), 'coordination.etcd.tls.key_file');
  t.equal(noKey.message, 'required key is missing when `cert_file` is set; expected the path of its private key');
  t.match(noKey.hint, /set both `cert_file` and `key_file`, or neither/);
  t.match(problemAt(t, coordinationWith('{ endpoints: [https://e:2379], tls: { key_file: c.key } }'), 'coordination.etcd.tls.cert_file').message, /missing when `key_file` is set/);

  const plain = problemAt(t, coordinationWith('{ endpoints: [http://e:2379], tls: { ca_file: ca.pem } }'), 'coordination.etcd.tls');
  t.equal(plain.message, '`ca_file` applies only to https:// endpoints; every endpoint here is http://');
  t.match(plain.hint, /https:\/\/, or remove `tls`/);
  t.match(problemAt(t, coordinationWith('{ endpoints: [https://e:2379], tls: { ca_file: 5 } }'), 'coordination.etcd.tls.ca_file').hint, /quotes/);
});

t.test('coordination: unknown keys', async (t) => {
  t.equal(problemAt(t, coordinationWith('{ endpoints: [http://e:2379] }', '  memebrs: [a]\n'), 'coordination.memebrs').message, 'unknown key `coordination.memebrs` — did you mean `members`?');
  t.equal(problemAt(t, coordinationWith('{ endpoint: [http://e:2379] }'), 'coordination.etcd.endpoint').message, 'unknown key `coordination.etcd.endpoint` — did you mean `endpoints`?');
  t.equal(problemAt(t, coordinationWith('{ endpoints: [https://e:2379], tls: { cafile: x } }'), 'coordination.etcd.tls.cafile').message, 'unknown key `coordination.etcd.tls.cafile` — did you mean `ca_file`?');
  t.equal(problemAt(t, `${MINIMAL}etcd: { endpoints: [http://e:2379] }\n`, 'etcd').hint, '`etcd` belongs under `coordination` or `health.patroni.dcs`');
});

t.test('coordination: describeConfig shows it without the password; a change needs a restart', async (t) => {
  const config = parseConfig(`${MINIMAL}${COORDINATION}`, { ETCD_PASSWORD: 'etcd-secret-9' });
  const text = describeConfig(config);
  t.match(text, /coordination: b of a, b, c \(quorum 2\)\s+ttl: 15s\s+on_etcd_loss: readonly\n/);
  t.match(text, /etcd: https:\/\/10\.0\.0\.1:2379 https:\/\/etcd-2\.example\.com:2379 https:\/\/\[fd00::3\]:2379\s+prefix: \/pgwarden\/main\s+timeout: 500ms\n/);
  t.match(text, /user: pgwarden\s+password: \(set\)\n\s+tls: ca_file \/etc\/pgwarden\/ca\.pem\s+cert_file \/etc\/pgwarden\/client\.pem/);
  t.notMatch(text, 'etcd-secret-9', 'the etcd password is never printed');
  t.notMatch(text, / $/m, 'no trailing spaces');
  t.match(describeConfig(parseConfig(MINIMAL, {})), /coordination: off \(this instance acts alone\)/);

  const alone = parseConfig(MINIMAL, {});
  const restart = 'coordination settings changed (take effect after a restart)';
  t.same(diffConfig(alone, config).summary.filter((line) => line.startsWith('coordination')), [restart], 'added');
  t.same(diffConfig(config, alone).summary.filter((line) => line.startsWith('coordination')), [restart], 'removed');
  const longer = parseConfig(`${MINIMAL}${COORDINATION.replace('ttl: 15s', 'ttl: 30s')}`, { ETCD_PASSWORD: 'etcd-secret-9' });
  t.same(diffConfig(config, longer).summary, [restart], 'changed');
  t.same(diffConfig(config, parseConfig(`${MINIMAL}${COORDINATION}`, { ETCD_PASSWORD: 'etcd-secret-9' })).summary, [], 'unchanged');
});

const TERMINATE = `tls:
  mode: terminate
  cert_file: /etc/pgwarden/server.pem
  key_file: /etc/pgwarden/server.key
`;

t.test('tls: a full terminate section parses into the contract', async (t) => {
  const config = parseConfig(
    `${MINIMAL}${TERMINATE}  min_version: TLSv1.3
  ca_file: /etc/pgwarden/client-ca.pem
  client_cert: verify
  client: require
  server: verify-ca
  server_ca_file: /etc/pgwarden/server-ca.pem
`,
    {},
  );
  t.strictSame(config.tls, {
    mode: 'terminate',
    certFile: '/etc/pgwarden/server.pem',
    keyFile: '/etc/pgwarden/server.key',
    minVersion: 'TLSv1.3',
    caFile: '/etc/pgwarden/client-ca.pem',
    clientCert: 'verify',
    client: 'require',
    server: 'verify-ca',
    serverCaFile: '/etc/pgwarden/server-ca.pem',
  });
  t.ok(Object.isFrozen(config.tls));

  t.strictSame(
    parseConfig(`${MINIMAL}${TERMINATE}`, {}).tls,
    { mode: 'terminate', certFile: '/etc/pgwarden/server.pem', keyFile: '/etc/pgwarden/server.key', minVersion: 'TLSv1.2', clientCert: 'off', client: 'allow', server: 'disable' },
    'defaults for what is not written',
  );
  for (const server of ['disable', 'prefer', 'require', 'verify-ca', 'verify-full'] as const) {
    t.equal(parseConfig(`${MINIMAL}tls: { server: ${server} }\n`, {}).tls.server, server, `server: ${server} under passthrough (health checks)`);
  }
  t.same(parseConfig(`${MINIMAL}tls: { mode: disable, server: verify-full }\n`, {}).tls, { mode: 'disable', minVersion: 'TLSv1.2', clientCert: 'off', client: 'allow', server: 'verify-full' }, 'the system CAs');
});

t.test('tls: terminate needs a certificate and its key', async (t) => {
  const none = configError(t, `${MINIMAL}tls: { mode: terminate }\n`);
  t.same(none.problems.map((p) => p.path), ['tls.cert_file', 'tls.key_file']);
  t.equal(none.problems[0]?.message, 'required key is missing when `mode` is `terminate`; expected the path of a PEM certificate');
  t.match(none.problems[0]?.hint, /shows this certificate to clients/);
  t.match(none.problems[1]?.message, /missing when `mode` is `terminate`; expected the path of the certificate's private key/);
  t.equal(none.problems[0]?.line, 5, 'points at the `tls` key');

  t.match(problemAt(t, `${MINIMAL}tls: { mode: terminate, key_file: k.pem }\n`, 'tls.cert_file').message, /required key is missing/);
  t.match(problemAt(t, `${MINIMAL}tls: { mode: terminate, cert_file: c.pem }\n`, 'tls.key_file').message, /required key is missing/);
  t.match(problemAt(t, `${MINIMAL}tls: { mode: terminate, cert_file: 5, key_file: k.pem }\n`, 'tls.cert_file').hint, /quotes/);
});

t.test('tls: keys of terminate are refused under another mode, where they would be ignored', async (t) => {
  const keys = { cert_file: 'c.pem', key_file: 'k.pem', min_version: 'TLSv1.3', ca_file: 'ca.pem', client_cert: 'verify', client: 'require' };
  for (const [key, value] of Object.entries(keys)) {
    for (const mode of ['passthrough', 'disable']) {
      const p = problemAt(t, `${MINIMAL}tls: { mode: ${mode}, ${key}: ${value} }\n`, `tls.${key}`);
      t.equal(p.message, `applies only to \`mode: terminate\` (here \`mode: ${mode}\`), so it would be ignored`);
      t.match(p.hint, new RegExp(`remove \`${key}\`, or set \`mode: terminate\`$`));
    }
  }
  t.match(problemAt(t, `${MINIMAL}tls: { cert_file: c.pem }\n`, 'tls.cert_file').message, /here `mode: passthrough`/, 'passthrough is the default');
  t.match(problemAt(t, `${MINIMAL}tls: { client: require }\n`, 'tls.client').hint, /`hostssl`/, 'under passthrough: where the server does it');
  t.match(problemAt(t, `${MINIMAL}tls: { min_version: TLSv1.3 }\n`, 'tls.min_version').hint, /ssl_min_protocol_version/);
  t.match(problemAt(t, `${MINIMAL}tls: { mode: disable, client_cert: verify }\n`, 'tls.client_cert').hint, /under `disable` no client gets TLS/);
  t.equal(configError(t, `${MINIMAL}tls: { client: allow, client_cert: off, cert_file: c.pem }\n`).problems.length, 3, 'written defaults too: one problem per key');
  t.equal(configError(t, `${MINIMAL}tls: { mode: terminat, cert_file: c.pem }\n`).problems.length, 1, 'only the mode when it does not parse');
});

t.test('tls: client certificates need ca_file, and ca_file needs client_cert: verify', async (t) => {
  const missing = problemAt(t, `${MINIMAL}${TERMINATE}  client_cert: verify\n`, 'tls.ca_file');
  t.match(missing.message, /required key is missing when `client_cert` is `verify`; expected the path of the CA that signs client certificates/);
  const alone = problemAt(t, `${MINIMAL}${TERMINATE}  ca_file: ca.pem\n`, 'tls.ca_file');
  t.equal(alone.message, 'is used only with `client_cert: verify`, so it would be ignored');
  t.equal(alone.hint, 'set `client_cert: verify` to require client certificates signed by this CA, or remove `ca_file`');
  t.match(problemAt(t, `${MINIMAL}${TERMINATE}  ca_file: ca.pem\n  client_cert: off\n`, 'tls.ca_file').message, /only with `client_cert: verify`/);
  t.same(configError(t, `${MINIMAL}${TERMINATE}  ca_file: ca.pem\n  client_cert: yes\n`).problems.map((p) => p.path), ['tls.client_cert'], 'a client_cert that does not parse is its own problem');
});

t.test('tls: server_ca_file only where the servers\' certificates are checked', async (t) => {
  for (const server of ['verify-ca', 'verify-full']) {
    t.equal(parseConfig(`${MINIMAL}tls: { server: ${server}, server_ca_file: ca.pem }\n`, {}).tls.serverCaFile, 'ca.pem');
  }
  for (const server of ['prefer', 'require']) {
    const p = problemAt(t, `${MINIMAL}tls: { server: ${server}, server_ca_file: ca.pem }\n`, 'tls.server_ca_file');
    t.equal(p.message, `applies only to \`server: verify-ca\` or \`verify-full\` (here \`server: ${server}\`), so it would be ignored`);
    t.match(p.hint, /encrypts without checking the server's certificate \(unlike libpq, not even when a CA is given\): set `server: verify-full`/);
  }
  t.match(problemAt(t, `${MINIMAL}tls: { server_ca_file: ca.pem }\n`, 'tls.server_ca_file').hint, /`server: disable`.*plain text/, 'disable is the default');
  t.same(configError(t, `${MINIMAL}tls: { server: verify_full, server_ca_file: ca.pem }\n`).problems.map((p) => p.path), ['tls.server'], 'a server that does not parse is its own problem');
});

t.test('tls: words that are not ours', async (t) => {
  const number = problemAt(t, `${MINIMAL}${TERMINATE}  min_version: 1.2\n`, 'tls.min_version');
  t.equal(number.message, 'expected one of `TLSv1.2`, `TLSv1.3`, got 1.2');
  t.equal(number.hint, 'did you mean `TLSv1.2`?');
  t.equal(problemAt(t, `${MINIMAL}${TERMINATE}  min_version: tls1.3\n`, 'tls.min_version').hint, 'did you mean `TLSv1.3`?');
  t.equal(problemAt(t, `${MINIMAL}tls: { server: verify_full }\n`, 'tls.server').hint, 'did you mean `verify-full`?');
  t.match(problemAt(t, `${MINIMAL}tls: { server: allow }\n`, 'tls.server').hint, /libpq's `allow`.*is not offered/);
  t.match(problemAt(t, `${MINIMAL}${TERMINATE}  client_cert: verify-full\n`, 'tls.client_cert').hint, /does not match the certificate's name to the user/);
  t.equal(problemAt(t, `${MINIMAL}${TERMINATE}  client_cert: verify-ca\n`, 'tls.client_cert').hint, 'did you mean `verify`?');
  t.equal(problemAt(t, `${MINIMAL}${TERMINATE}  client: required\n`, 'tls.client').hint, 'did you mean `require`?');
  t.equal(problemAt(t, `${MINIMAL}tls: { cafile: x }\n`, 'tls.cafile').message, 'unknown key `tls.cafile` — did you mean `ca_file`?');
});

t.test('tls: describeConfig shows both legs; a change is reported by a reload', async (t) => {
  t.match(describeConfig(parseConfig(MINIMAL, {})), /\ntls: passthrough \(a client's TLS goes through to the server\)\n {2}server: disable {2}\(health checks, pg_promote\)\n/);
  const full = parseConfig(`${MINIMAL}${TERMINATE}  ca_file: /ca.pem\n  client_cert: verify\n  client: require\n  server: verify-full\n`, {});
  const text = describeConfig(full);
  t.match(text, /\ntls: terminate \(pgwarden does TLS with clients itself\)\n/);
  t.match(text, /\n {2}cert_file: \/etc\/pgwarden\/server\.pem {2}key_file: \/etc\/pgwarden\/server\.key {2}min_version: TLSv1\.2\n/);
  t.match(text, /\n {2}client_cert: verify \(ca_file \/ca\.pem\) {2}client: require \(clients without TLS are refused\)\n/);
  t.match(text, /\n {2}server: verify-full {2}server_ca_file: \(system CAs\) {2}\(sessions, health checks, pg_promote\)\n/);
  t.notMatch(text, / $/m, 'no trailing spaces');
  t.same(diffConfig(parseConfig(MINIMAL, {}), full).summary, ['tls settings changed']);
});
