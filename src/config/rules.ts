// Rules that involve more than one key: unique names and binds, a listener that would proxy
// to itself, `fallback` only where it means something, fast_interval <= interval, the check
// password and the admin token, roles for tcp checks, ports the admin API or the agent
// would share with a listener or a server, and coordination (this instance among the
// members, how etcd is reached, lease timing). The `tls` section's rules are in tls-rules.ts,
// `health.patroni`'s in patroni-rules.ts. Pure.
//
// These run on a partly parsed document (values that failed to parse are left as written),
// so every read is guarded: a rule only judges values that parsed, and the value that did
// not parse already has its own problem.

import { patroniRules } from './patroni-rules';
import { tlsRules } from './tls-rules';
import { authRules } from './auth-rules';
import { formatDuration } from './units';

export type Report = (path: readonly (string | number)[], message: string, hint?: string) => void;

interface Endpoint {
  readonly host: string;
  readonly port: number;
}

type Mapping = Record<string, unknown>;

function isMapping(value: unknown): value is Mapping {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function entries(doc: Mapping, key: string): Mapping[] {
  const list = doc[key];
  return Array.isArray(list) ? list.map((item) => (isMapping(item) ? item : {})) : [];
}

function asString(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function asNumber(value: unknown): number | undefined {
  return typeof value === 'number' ? value : undefined;
}

function asEndpoint(value: unknown): Endpoint | undefined {
  return isMapping(value) && typeof value.host === 'string' && typeof value.port === 'number'
    ? { host: value.host, port: value.port }
    : undefined;
}

const WILDCARDS = new Set(['0.0.0.0', '::']);
const LOOPBACK = new Set(['localhost', '127.0.0.1', '::1']);

function showEndpoint(e: Endpoint): string {
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}

/** Whether a listener bound at `bind` would receive connections meant for `target`. */
function reaches(bind: Endpoint, target: Endpoint): boolean {
  if (bind.port !== target.port) return false;
  const a = bind.host.toLowerCase();
  const b = target.host.toLowerCase();
  if (a === b) return true;
  if (WILDCARDS.has(a) && LOOPBACK.has(b)) return true;
  return (a === 'localhost' && LOOPBACK.has(b)) || (b === 'localhost' && LOOPBACK.has(a));
}

/** Names must be unique within listeners and within backends: they label logs and metrics. */
function uniqueNames(doc: Mapping, list: 'listeners' | 'backends', report: Report): void {
  const seen = new Map<string, number>();
  entries(doc, list).forEach((item, i) => {
    const name = asString(item.name);
    if (name === undefined) return;
    const first = seen.get(name);
    if (first === undefined) seen.set(name, i);
    else report([list, i, 'name'], `duplicate name \`${name}\`, already used by ${list}[${first}]`, `each entry of \`${list}\` needs its own name`);
  });
}

function listenerBinds(doc: Mapping, report: Report): void {
  const binds: { index: number; endpoint: Endpoint }[] = [];
  entries(doc, 'listeners').forEach((item, i) => {
    const endpoint = asEndpoint(item.bind);
    if (endpoint === undefined) return;
    const clash = binds.find((b) => b.endpoint.port === endpoint.port && (reaches(b.endpoint, endpoint) || reaches(endpoint, b.endpoint)));
    if (clash !== undefined) {
      report(
        ['listeners', i, 'bind'],
        `${showEndpoint(endpoint)} overlaps listeners[${clash.index}].bind ${showEndpoint(clash.endpoint)}`,
        'two listeners cannot share an address and port; give each its own port',
      );
    }
    binds.push({ index: i, endpoint });
  });

  const backends = entries(doc, 'backends');
  for (const { index, endpoint } of binds) {
    backends.forEach((backend, j) => {
      const port = asNumber(backend.port);
      const host = asString(backend.host);
      if (port === undefined || host === undefined || !reaches(endpoint, { host, port })) return;
      report(
        ['listeners', index, 'bind'],
        `${showEndpoint(endpoint)} is the address of backend \`${asString(backend.name) ?? `backends[${j}]`}\` (backends[${j}]); the proxy would connect to itself`,
        'a listener needs a port of its own, e.g. 6432 for a server on 5432',
      );
    });
  }
}

function listenerFallback(doc: Mapping, report: Report): void {
  entries(doc, 'listeners').forEach((item, i) => {
    const route = asString(item.route);
    if (item.fallback === undefined || route === undefined || route === 'replica') return;
    report(
      ['listeners', i, 'fallback'],
      `\`fallback\` applies only to \`route: replica\`; this listener has \`route: ${route}\``,
      route === 'any' ? 'remove `fallback`: `route: any` already includes the primary' : 'remove `fallback`, or set `route: replica`',
    );
  });
}

function healthTiming(health: Mapping, report: Report): void {
  const interval = asNumber(health.interval);
  const fast = asNumber(health.fast_interval);
  if (interval !== undefined && fast !== undefined && fast > interval) {
    report(
      ['health', 'fast_interval'],
      `must not be longer than \`interval\` (${formatDuration(fast)} > ${formatDuration(interval)})`,
      'fast_interval is the quicker pace used while a server is going up or down',
    );
  }
}

interface SecretKeys {
  /** The mapping that holds the keys: `['health']`. */
  readonly section: readonly string[];
  /** `password` or `token`; `<key>_env` names the variable. */
  readonly key: string;
  /** What the secret is, for hints: "the check user's password". */
  readonly what: string;
  /** What removing the `_env` key means. */
  readonly without: string;
}

/** A secret is written in the file or named by a variable, not both; a named variable must hold it. */
function secretFromEnv(mapping: Mapping, keys: SecretKeys, env: NodeJS.ProcessEnv, report: Report): void {
  const envKey = `${keys.key}_env`;
  const variable = asString(mapping[envKey]);
  if (mapping[keys.key] !== undefined && mapping[envKey] !== undefined) {
    report([...keys.section, envKey], `set either \`${keys.key}\` or \`${envKey}\`, not both`, `prefer \`${envKey}\`: it keeps the secret out of the file`);
    return;
  }
  if (variable === undefined) return;
  const value = env[variable];
  if (value === undefined) {
    report([...keys.section, envKey], `environment variable \`${variable}\` is not set`, `export ${variable}=... before starting pgwarden, or remove \`${envKey}\` ${keys.without}`);
  } else if (value === '') {
    report([...keys.section, envKey], `environment variable \`${variable}\` is set but empty`, `export ${variable} with ${keys.what}`);
  }
}

const CHECK_PASSWORD: SecretKeys = { section: ['health'], key: 'password', what: "the check user's password", without: 'if the check user needs no password' };
const ADMIN_TOKEN: SecretKeys = { section: ['admin'], key: 'token', what: 'the admin API token', without: '(without a token the admin API refuses every change)' };

/** The admin API needs a port of its own: not a listener's (clients would reach it) nor a server's. */
function adminBind(doc: Mapping, admin: Mapping, report: Report): void {
  const bind = asEndpoint(admin.bind);
  if (bind === undefined) return;
  entries(doc, 'listeners').forEach((listener, i) => {
    const other = asEndpoint(listener.bind);
    if (other === undefined || !(reaches(bind, other) || reaches(other, bind))) return;
    report(['admin', 'bind'], `${showEndpoint(bind)} overlaps listeners[${i}].bind ${showEndpoint(other)}`, 'the admin API needs a port of its own, e.g. 127.0.0.1:8404');
  });
  entries(doc, 'backends').forEach((backend, j) => {
    const port = asNumber(backend.port);
    const host = asString(backend.host);
    if (port === undefined || host === undefined || !reaches(bind, { host, port })) return;
    report(
      ['admin', 'bind'],
      `${showEndpoint(bind)} is the address of backend \`${asString(backend.name) ?? `backends[${j}]`}\` (backends[${j}])`,
      'the admin API needs a port of its own, e.g. 127.0.0.1:8404',
    );
  });
}

/** The agent listens on each database host beside PostgreSQL, so it cannot use a server's port. */
function agentPort(doc: Mapping, health: Mapping, report: Report): void {
  const port = isMapping(health.agent) ? asNumber(health.agent.port) : undefined;
  if (port === undefined) return;
  const backend = entries(doc, 'backends').findIndex((b) => asNumber(b.port) === port);
  if (backend === -1) return;
  report(
    ['health', 'agent', 'port'],
    `${port} is the PostgreSQL port of backends[${backend}]; the agent check would talk to PostgreSQL`,
    '`pgwarden agent` listens on a port of its own on each database host, e.g. 5555',
  );
}

/** pgwarden can promote only a server whose role and lag it sees. */
function promoteNeeds(failover: Mapping, health: Mapping, report: Report): void {
  if (failover.mode !== 'promote' || health.check !== 'tcp') return;
  report(
    ['failover', 'mode'],
    '`promote` needs `health.check: postgres`',
    'a tcp check cannot see which server is primary nor how far a replica lags; use `check: postgres` or `mode: follow`',
  );
}

/** A tcp check only learns that a port accepts connections, never the server's role. */
function tcpCheckNeeds(doc: Mapping, health: Mapping, report: Report): void {
  if (health.check !== 'tcp') return;
  entries(doc, 'backends').forEach((backend, i) => {
    if (backend.role !== undefined) return;
    report(
      ['backends', i, 'role'],
      'required key is missing when `health.check` is `tcp`; expected `primary` or `replica`',
      'a tcp check cannot ask a server its role; set `role:` on every backend, or use `check: postgres`',
    );
  });
  if (health.max_replica_lag !== undefined) {
    report(
      ['health', 'max_replica_lag'],
      'cannot be measured with `check: tcp`',
      'use `check: postgres` to limit replication lag, or remove `max_replica_lag`',
    );
  }
}

const ETCD_PASSWORD: SecretKeys = { section: ['coordination', 'etcd'], key: 'password', what: "the etcd user's password", without: 'and `user` if etcd needs no login' };

/** This instance is one of the members, each listed once: a quorum is a majority of that list. */
function coordinationMembers(coordination: Mapping, report: Report): void {
  const members = Array.isArray(coordination.members) ? coordination.members : [];
  const seen = new Map<string, number>();
  members.forEach((member, i) => {
    if (typeof member !== 'string') return;
    const first = seen.get(member);
    if (first === undefined) seen.set(member, i);
    else report(['coordination', 'members', i], `duplicate member \`${member}\`, already members[${first}]`, 'list each instance once: a quorum is a majority of this list');
  });
  const name = asString(coordination.name);
  if (name === undefined || seen.size === 0 || seen.has(name)) return;
  report(
    ['coordination', 'name'],
    `\`${name}\` is not one of \`members\` (${[...seen.keys()].join(', ')})`,
    'every instance lists the same `members` and names itself in `name`: add this instance to the list or correct its name',
  );
}

interface EtcdEndpoint extends Endpoint {
  readonly url: string;
  readonly secure: boolean;
}

/** Endpoints that parsed (`scheme://host:port`, as fields.ts writes them back). */
function etcdEndpoints(etcd: Mapping): (EtcdEndpoint | undefined)[] {
  const list = Array.isArray(etcd.endpoints) ? etcd.endpoints : [];
  return list.map((url) => {
    const match = typeof url === 'string' ? /^(https?):\/\/(?:\[([^\]]+)\]|([^:[\]]+)):(\d+)$/.exec(url) : null;
    if (match === null) return undefined;
    return { url: url as string, secure: match[1] === 'https', host: match[2] ?? match[3]!, port: Number(match[4]) };
  });
}

/**
 * How etcd is reached. The etcd client has one kind of connection for every endpoint: TLS when
 * any endpoint is https:// or any `tls` file is given, even for an http:// URL. So the schemes
 * must agree and `tls` needs https://, or the file would not say what happens.
 */
function etcdConnection(doc: Mapping, etcd: Mapping, report: Report): void {
  const endpoints = etcdEndpoints(etcd);
  const parsed = endpoints.filter((e): e is EtcdEndpoint => e !== undefined);
  const secure = new Set(parsed.map((e) => e.secure));
  if (secure.size > 1) {
    report(['coordination', 'etcd', 'endpoints'], 'mixes http:// and https:// endpoints', 'the etcd client uses one kind of connection for all of them: write every endpoint with https:// (or every one with http://)');
  }
  const tls = isMapping(etcd.tls) ? etcd.tls : {};
  if (tls.cert_file !== undefined && tls.key_file === undefined) {
    report(['coordination', 'etcd', 'tls', 'key_file'], 'required key is missing when `cert_file` is set; expected the path of its private key', 'a client certificate needs its key: set both `cert_file` and `key_file`, or neither');
  } else if (tls.key_file !== undefined && tls.cert_file === undefined) {
    report(['coordination', 'etcd', 'tls', 'cert_file'], 'required key is missing when `key_file` is set; expected the path of the client certificate', 'set both `cert_file` and `key_file`, or neither');
  }
  const files = ['ca_file', 'cert_file', 'key_file'].filter((k) => tls[k] !== undefined);
  if (files.length > 0 && secure.size === 1 && secure.has(false)) {
    report(['coordination', 'etcd', 'tls'], `\`${files.join('`, `')}\` ${files.length === 1 ? 'applies' : 'apply'} only to https:// endpoints; every endpoint here is http://`, 'write the endpoints with https://, or remove `tls`');
  }

  // An endpoint that is one of pgwarden's own addresses would have it talk to itself, not to etcd.
  const own = [
    ...entries(doc, 'listeners').map((l, i) => ({ bind: asEndpoint(l.bind), what: `listener \`${asString(l.name) ?? i}\` (listeners[${i}])` })),
    ...(isMapping(doc.admin) ? [{ bind: asEndpoint(doc.admin.bind), what: 'the admin API (admin.bind)' }] : []),
  ];
  endpoints.forEach((endpoint, i) => {
    const clash = endpoint === undefined ? undefined : own.find((o) => o.bind !== undefined && reaches(o.bind, endpoint));
    if (endpoint === undefined || clash === undefined) return;
    report(['coordination', 'etcd', 'endpoints', i], `${endpoint.url} is the address of ${clash.what}, not of etcd`, "point it at etcd's client URL (port 2379 unless configured otherwise)");
  });
}

/** One etcd request must fit between two lease renewals, which come every ttl/3. */
function coordinationTiming(coordination: Mapping, etcd: Mapping, report: Report): void {
  const ttl = asNumber(coordination.ttl);
  const timeout = asNumber(etcd.timeout);
  if (ttl === undefined || timeout === undefined || timeout * 3 < ttl) return;
  report(
    ['coordination', 'etcd', 'timeout'],
    `must be less than a third of \`coordination.ttl\` (${formatDuration(timeout)}, ttl ${formatDuration(ttl)})`,
    `the lease is renewed every ttl/3 (${formatDuration(Math.floor(ttl / 3))} here) and one renewal may take up to \`timeout\`: lower \`timeout\` or raise \`ttl\``,
  );
}

function coordinationRules(doc: Mapping, coordination: Mapping, env: NodeJS.ProcessEnv, report: Report): void {
  const etcd = isMapping(coordination.etcd) ? coordination.etcd : {};
  coordinationMembers(coordination, report);
  etcdConnection(doc, etcd, report);
  coordinationTiming(coordination, etcd, report);
  const advertise = asString(coordination.advertise)?.replace(/^\[(.*)\]$/, '$1');
  if (advertise !== undefined && WILDCARDS.has(advertise)) {
    report(
      ['coordination', 'advertise'],
      `is a wildcard address (${advertise}); expected the address the other instances reach this one at`,
      "write this host's own address or a name that resolves to it, e.g. `advertise: 10.0.0.1`",
    );
  }
  if (etcd.password_env !== undefined && etcd.user === undefined) {
    report(['coordination', 'etcd', 'password_env'], 'needs `user` beside it', 'etcd checks a user name and a password together: set `user`, or remove `password_env`');
  }
  // `password` itself is refused by the schema; only the variable is judged here.
  secretFromEnv({ password_env: etcd.password_env }, ETCD_PASSWORD, env, report);
}

export function checkRules(doc: unknown, env: NodeJS.ProcessEnv, report: Report): void {
  if (!isMapping(doc)) return;
  const health = isMapping(doc.health) ? doc.health : {};
  uniqueNames(doc, 'listeners', report);
  uniqueNames(doc, 'backends', report);
  listenerBinds(doc, report);
  listenerFallback(doc, report);
  healthTiming(health, report);
  secretFromEnv(health, CHECK_PASSWORD, env, report);
  tcpCheckNeeds(doc, health, report);
  agentPort(doc, health, report);
  patroniRules(doc, health, env, report);
  promoteNeeds(isMapping(doc.failover) ? doc.failover : {}, health, report);
  if (isMapping(doc.tls)) tlsRules(doc.tls, report);
  if (isMapping(doc.auth)) authRules(doc.auth, env, report);
  if (isMapping(doc.admin)) {
    adminBind(doc, doc.admin, report);
    secretFromEnv(doc.admin, ADMIN_TOKEN, env, report);
  }
  if (isMapping(doc.coordination)) coordinationRules(doc, doc.coordination, env, report);
}

