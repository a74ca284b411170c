// Rules that involve more than one key: unique names and binds, a listener that would proxy
// to itself, `fallback` only where it means something, fast_interval <= interval, the check
// password, and roles for tcp checks. Pure.
//
// These run on a partly parsed document (values that failed to parse are left as written),
// so every read is guarded: a rule only judges values that parsed, and the value that did
// not parse already has its own problem.

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

function healthPassword(health: Mapping, env: NodeJS.ProcessEnv, report: Report): void {
  const variable = asString(health.password_env);
  if (health.password !== undefined && health.password_env !== undefined) {
    report(['health', 'password_env'], 'set either `password` or `password_env`, not both', 'prefer `password_env`: it keeps the secret out of the file');
    return;
  }
  if (variable === undefined) return;
  const value = env[variable];
  if (value === undefined) {
    report(
      ['health', 'password_env'],
      `environment variable \`${variable}\` is not set`,
      `export ${variable}=... before starting pgwarden, or remove \`password_env\` if the check user needs no password`,
    );
  } else if (value === '') {
    report(['health', 'password_env'], `environment variable \`${variable}\` is set but empty`, `export ${variable} with the check user's password`);
  }
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

export function checkRules(doc: unknown, env: NodeJS.ProcessEnv, report: Report): void {
  if (!isMapping(doc)) return;
  const health = isMapping(doc.health) ? doc.health : {};
  uniqueNames(doc, 'listeners', report);
  uniqueNames(doc, 'backends', report);
  listenerBinds(doc, report);
  listenerFallback(doc, report);
  healthTiming(health, report);
  healthPassword(health, env, report);
  tcpCheckNeeds(doc, health, report);
}
