// Zod building blocks for one configuration value each: a name, a port, a bind address, a
// duration ... Every block parses with a plain function that throws ConfigValueError, so the
// message a user reads is ours ("expected a port number from 1 to 65535, got 70000"), not a
// generic one, and a hint travels with it. Defaults are added by the caller (`.default()`).

import { isIPv6 } from 'node:net';
import { z } from 'zod';
import { didYouMean } from './did-you-mean';
import { ConfigValueError } from '../errors';
import { showValue } from './show-value';
import { parseDuration, parseFraction, parsePercent, parseReplicaLag, parseSize, type ReplicaLagLimit } from './units';

/** Node's timers overflow past 2^31-1 ms (about 24.8 days) and then fire after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

/**
 * One value: `parse` sees the raw YAML value and returns the typed one or throws
 * ConfigValueError. A missing required key reaches `parse` too and is reported with what
 * was expected.
 */
export function field<T>(expected: string, parse: (input: unknown) => T): z.ZodType<T, unknown> {
  return z.unknown().transform((input, ctx) => {
    try {
      if (input === undefined) throw new ConfigValueError(`required key is missing; expected ${expected}`);
      return parse(input);
    } catch (e) {
      if (!(e instanceof ConfigValueError)) throw e;
      ctx.addIssue({ code: 'custom', input, message: e.message, params: e.hint === undefined ? {} : { hint: e.hint } });
      return z.NEVER;
    }
  });
}

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** A listener or backend name: it labels logs and metrics and reaches hook environments. */
export function name(): z.ZodType<string, unknown> {
  const expected = 'a name of letters, digits, `_`, `.` or `-` (at most 63 characters)';
  return field(expected, (input) => {
    const text = typeof input === 'number' ? String(input) : input;
    if (typeof text !== 'string' || !NAME_PATTERN.test(text)) {
      throw new ConfigValueError(`expected ${expected}, got ${showValue(input)}`, 'names label logs and metrics, e.g. `pg1` or `rw`');
    }
    return text;
  });
}

/** A non-empty string that must not be silently coerced from a YAML number or boolean. */
export function text(expected: string): z.ZodType<string, unknown> {
  return field(expected, (input) => {
    if (typeof input === 'string' && input !== '') return input;
    const hint = typeof input === 'number' || typeof input === 'boolean' ? 'put it in quotes so YAML reads it as text' : undefined;
    throw new ConfigValueError(`expected ${expected}, got ${showValue(input)}`, hint);
  });
}

export function integer(min: number, max?: number): z.ZodType<number, unknown> {
  const range = max === undefined ? `an integer of at least ${min}` : `an integer from ${min} to ${max}`;
  return field(range, (input) => {
    if (typeof input !== 'number' || !Number.isInteger(input)) {
      const hint = typeof input === 'string' && /^\d+$/.test(input) ? 'write the number without quotes' : undefined;
      throw new ConfigValueError(`expected ${range}, got ${showValue(input)}`, hint);
    }
    if (input < min || (max !== undefined && input > max)) throw new ConfigValueError(`expected ${range}, got ${input}`);
    return input;
  });
}

export function flag(): z.ZodType<boolean, unknown> {
  return field('`true` or `false`', (input) => {
    if (typeof input === 'boolean') return input;
    throw new ConfigValueError(`expected \`true\` or \`false\`, got ${showValue(input)}`, 'write true or false, without quotes');
  });
}

/** One of a fixed set of words; `aliases` maps words from other tools to ours for the hint. */
export function oneOf<const T extends string>(
  values: readonly T[],
  aliases: Readonly<Record<string, NoInfer<T>>> = {},
  hints: Readonly<Record<string, string>> = {},
): z.ZodType<T, unknown> {
  const listed = values.map((v) => `\`${v}\``).join(', ');
  return field(`one of ${listed}`, (input) => {
    if (typeof input === 'string' && (values as readonly string[]).includes(input)) return input as T;
    // YAML reads `1.2` as a number; its text still finds an alias (`min_version: 1.2`).
    const word = typeof input === 'string' ? input : typeof input === 'number' ? String(input) : '';
    const alias = Object.hasOwn(aliases, word.toLowerCase()) ? aliases[word.toLowerCase()] : undefined;
    const guess = alias ?? didYouMean(word, values);
    const hint = Object.hasOwn(hints, word) ? hints[word] : guess === undefined ? undefined : `did you mean \`${guess}\`?`;
    throw new ConfigValueError(`expected one of ${listed}, got ${showValue(input)}`, hint);
  });
}

/** `on` or `off` (also `true`/`false`, which YAML 1.1 tools write for on/off). */
export function onOff(): z.ZodType<'on' | 'off', unknown> {
  return field('`on` or `off`', (input) => {
    if (input === true || input === 'on') return 'on';
    if (input === false || input === 'off') return 'off';
    const word = typeof input === 'string' ? input.toLowerCase() : '';
    const hint = ['yes', 'true', 'enable', 'enabled'].includes(word) ? 'did you mean `on`?' : ['no', 'false', 'disable', 'disabled'].includes(word) ? 'did you mean `off`?' : undefined;
    throw new ConfigValueError(`expected \`on\` or \`off\`, got ${showValue(input)}`, hint);
  });
}

/** A duration in ms; `positive` rejects 0 (an interval of 0 would spin). */
export function duration(bound: 'positive' | 'non-negative'): z.ZodType<number, unknown> {
  const expected = 'a duration like `250ms`, `1s` or `2m`';
  return field(expected, (input) => {
    const ms = parseDuration(input);
    if (bound === 'positive' && ms <= 0) throw new ConfigValueError(`must be longer than 0, got ${showValue(input)}`);
    if (ms > MAX_TIMER_MS) throw new ConfigValueError(`must be at most 24 days (a Node.js timer limit), got ${showValue(input)}`);
    return ms;
  });
}

export function fraction(): z.ZodType<number, unknown> {
  return field('a fraction like `0.1` or `10%`', parseFraction);
}

/** A size in bytes (`16MB`); a duration written here gets a hint, since lag limits elsewhere may be either. */
export function size(): z.ZodType<number, unknown> {
  return field('a size like `16MB`', (input) => {
    try {
      return parseSize(input);
    } catch (e) {
      if (!(e instanceof ConfigValueError) || e.hint !== undefined || !isDuration(input)) throw e;
      throw new ConfigValueError(e.message, 'this limit is a size (bytes of WAL), not a time: write e.g. `16MB`');
    }
  });
}

function isDuration(input: unknown): boolean {
  try {
    parseDuration(input);
    return typeof input === 'string';
  } catch {
    return false;
  }
}

export function percent(): z.ZodType<number, unknown> {
  return field('a percentage like `80%`', parsePercent);
}

/**
 * A password or token. Unlike `text`, a wrong value is described, never shown: a secret
 * typed without quotes is still a secret, and problems end up in terminals and logs.
 */
export function secret(expected: string): z.ZodType<string, unknown> {
  return field(expected, (input) => {
    if (typeof input === 'string' && input !== '') return input;
    const scalar = typeof input === 'number' || typeof input === 'boolean';
    const got = scalar ? `a ${typeof input}` : input === '' ? 'an empty string' : showValue(input);
    throw new ConfigValueError(`expected ${expected}, got ${got}`, scalar ? 'put it in quotes so YAML reads it as text' : undefined);
  });
}

export function replicaLag(): z.ZodType<ReplicaLagLimit, unknown> {
  return field('a size like `16MB` or a duration like `10s`', parseReplicaLag);
}

export function port(): z.ZodType<number, unknown> {
  return field('a port number from 1 to 65535', (input) => parsePort(input, showValue(input)));
}

function parsePort(input: unknown, shown: string): number {
  if (typeof input === 'number' && Number.isInteger(input) && input >= 1 && input <= 65535) return input;
  const hint = typeof input === 'string' && /^\d+$/.test(input) ? 'write the port without quotes' : undefined;
  throw new ConfigValueError(`expected a port number from 1 to 65535, got ${shown}`, hint);
}

const HOSTNAME = /^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$/;
/** A backend host: a name, an IPv4 address or an IPv6 address (brackets optional). */
export function host(): z.ZodType<string, unknown> {
  const expected = 'a host name or IP address';
  return field(expected, (input) => {
    if (typeof input !== 'string' || input === '') throw new ConfigValueError(`expected ${expected}, got ${showValue(input)}`);
    const bare = input.startsWith('[') && input.endsWith(']') ? input.slice(1, -1) : input;
    if (HOSTNAME.test(bare) || isIPv6(bare)) return bare;
    let hint: string | undefined;
    if (/^[^:]+:\d+$/.test(input)) hint = `put the port under \`port:\` and write \`host: ${input.split(':')[0]}\``;
    else if (input.includes('://')) hint = 'write only the host name, without a scheme';
    else if (input.startsWith('/')) hint = 'Unix-domain sockets are not supported; use a TCP address such as 127.0.0.1';
    throw new ConfigValueError(`expected ${expected}, got ${showValue(input)}`, hint);
  });
}

/** `host:port` or `[ipv6]:port`, as a listener binds it. */
export function bind(): z.ZodType<Endpoint, unknown> {
  const expected = '`host:port` like `127.0.0.1:6432` (`[::1]:6432` for IPv6)';
  return field(expected, (input) => {
    if (Array.isArray(input)) {
      throw new ConfigValueError(`expected ${expected}, got a list`, 'quote IPv6 addresses in YAML: bind: "[::1]:6432"');
    }
    if (typeof input !== 'string') {
      const hint = typeof input === 'number' ? `write the address too: \`127.0.0.1:${input}\` (\`0.0.0.0:${input}\` for every interface)` : undefined;
      throw new ConfigValueError(`expected ${expected}, got ${showValue(input)}`, hint);
    }
    const bracketed = /^\[([^\]]*)\]:([^:]*)$/.exec(input);
    const plain = /^([^:[\]]*):([^:]*)$/.exec(input);
    const match = bracketed ?? plain;
    if (match === null) {
      const colons = input.split(':').length - 1;
      const hint =
        colons === 0
          ? `add the port: \`${input}:6432\``
          : colons > 1 && !input.startsWith('[')
            ? 'write IPv6 addresses in brackets, quoted: bind: "[::1]:6432"'
            : undefined;
      throw new ConfigValueError(`expected ${expected}, got ${showValue(input)}`, hint);
    }
    const address = match[1]!;
    const portText = match[2]!;
    const validHost = bracketed !== null ? isIPv6(address) : HOSTNAME.test(address);
    if (!validHost) {
      const hint = address === '' || address === '*' ? `to listen on every interface write \`0.0.0.0:${portText}\`` : undefined;
      throw new ConfigValueError(`expected ${expected}, got ${showValue(input)}`, hint);
    }
    const portNumber = /^\d+$/.test(portText) ? Number(portText) : NaN;
    return { host: address, port: parsePort(portNumber, `${portText === '' ? 'no port' : portText} in ${showValue(input)}`) };
  });
}

/**
 * An etcd endpoint: `http://` or `https://`, a host and an explicit port, nothing else. The
 * etcd client strips only the scheme and hands the rest to gRPC as `host:port`, so a path or
 * a trailing slash would break every request; the URL is returned as `scheme://host:port`.
 */
export function httpUrl(): z.ZodType<string, unknown> {
  const expected = 'an http:// or https:// URL with host and port, like `http://127.0.0.1:2379`';
  return field(expected, (input) => {
    if (typeof input !== 'string' || input === '') throw new ConfigValueError(`expected ${expected}, got ${showValue(input)}`);
    const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(input)?.[1]?.toLowerCase();
    if (scheme === undefined) {
      throw new ConfigValueError(`expected ${expected}, got ${showValue(input)}`, `add the scheme: \`http://${input}\` (\`https://\` for TLS)`);
    }
    if (scheme !== 'http' && scheme !== 'https') {
      throw new ConfigValueError(`expected ${expected}, got ${showValue(input)}`, `etcd endpoints are \`http://\` or \`https://\` URLs, not \`${scheme}://\``);
    }
    if (input.includes('@')) {
      // Not shown: what precedes `@` may be a password.
      throw new ConfigValueError(`expected ${expected}, got a URL with credentials in it`, 'write the user under `user:` and put the password in the variable `password_env` names');
    }
    const match = /^[^:]+:\/\/(\[[^\]]*\]|[^/:?#[\]]*)(?::([^/?#]*))?\/?$/.exec(input);
    if (match === null) {
      throw new ConfigValueError(`expected ${expected}, got ${showValue(input)}`, 'write only `scheme://host:port`: etcd endpoints have no path, query or fragment');
    }
    const address = match[1]!;
    const bare = address.startsWith('[') ? address.slice(1, -1) : address;
    if (!(address.startsWith('[') ? isIPv6(bare) : HOSTNAME.test(bare))) {
      throw new ConfigValueError(`expected ${expected}, got ${showValue(input)}`, bare === '' ? 'add the host: `http://127.0.0.1:2379`' : undefined);
    }
    if (match[2] === undefined) {
      throw new ConfigValueError(`expected ${expected}, got ${showValue(input)}`, `add the port: \`${scheme}://${address}:2379\` (etcd's client port is 2379)`);
    }
    const portNumber = /^\d+$/.test(match[2]) ? Number(match[2]) : NaN;
    const portValue = parsePort(portNumber, `${match[2] === '' ? 'no port' : match[2]} in ${showValue(input)}`);
    return `${scheme}://${address.toLowerCase()}:${portValue}`;
  });
}

/** etcd grants leases in whole seconds, and one shorter than 2 s expires between renewals. */
const MIN_LEASE_MS = 2_000;

/** A lease time to live: whole seconds, at least 2 s. */
export function lease(): z.ZodType<number, unknown> {
  const expected = 'a whole number of seconds like `10s` (at least `2s`)';
  return field(expected, (input) => {
    const ms = parseDuration(input);
    if (ms < MIN_LEASE_MS) {
      throw new ConfigValueError(`must be at least 2s, got ${showValue(input)}`, 'a lease shorter than 2s can expire between two renewals, so this instance would drop in and out');
    }
    if (ms % 1_000 !== 0) {
      const down = Math.floor(ms / 1_000);
      throw new ConfigValueError(`must be a whole number of seconds, got ${showValue(input)}`, `etcd grants leases in whole seconds: write \`${down}s\` or \`${down + 1}s\``);
    }
    if (ms > MAX_TIMER_MS) throw new ConfigValueError(`must be at most 24 days (a Node.js timer limit), got ${showValue(input)}`);
    return ms;
  });
}

/** An etcd key prefix: starts with `/`, returned without trailing slashes (keys are `<prefix>/<name>`). */
export function keyPrefix(): z.ZodType<string, unknown> {
  const expected = 'a key prefix starting with `/`, like `/pgwarden`';
  return field(expected, (input) => {
    if (typeof input !== 'string' || input === '') throw new ConfigValueError(`expected ${expected}, got ${showValue(input)}`);
    if (!input.startsWith('/')) throw new ConfigValueError(`expected ${expected}, got ${showValue(input)}`, `write \`/${input}\``);
    const trimmed = input.replace(/\/+$/, '');
    if (trimmed === '') {
      throw new ConfigValueError(`expected ${expected}, got ${showValue(input)}`, "give this cluster's keys a prefix of their own, e.g. `/pgwarden/main`, so they cannot mix with other users of etcd");
    }
    return trimmed;
  });
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The name of an environment variable (not its value, which is read in load.ts). */
export function envName(): z.ZodType<string, unknown> {
  const expected = 'the name of an environment variable, like `PGWARDEN_CHECK_PASSWORD`';
  return field(expected, (input) => {
    if (typeof input === 'string' && ENV_NAME.test(input)) return input;
    const hint =
      typeof input === 'string' && /^\$\{?[A-Za-z_][A-Za-z0-9_]*\}?$/.test(input)
        ? `write the variable's name without \`$\`: ${input.replace(/[${}]/g, '')}`
        : undefined;
    throw new ConfigValueError(`expected ${expected}, got ${showValue(input)}`, hint);
  });
}

export const NO_SHELL_HINT = 'write it as a list: ["/path/script.sh", "arg"] — no shell is used; use [sh, -c, \'...\'] for one';

/** A program and its arguments. Hooks run without a shell, so a single string is refused, not split. */
export function argv(): z.ZodType<string[], unknown> {
  const expected = 'a list of strings: the program, then its arguments';
  const argument = field('a non-empty string', (input) => {
    if (typeof input === 'string' && input !== '') return input;
    const hint = typeof input === 'number' || typeof input === 'boolean' ? 'put it in quotes so YAML reads it as text' : undefined;
    throw new ConfigValueError(`expected a non-empty string, got ${showValue(input)}`, hint);
  });
  return z.preprocess(
    (input, ctx) => {
      if (Array.isArray(input) && input.length > 0) return input;
      const message =
        input === undefined
          ? `required key is missing; expected ${expected}`
          : Array.isArray(input)
            ? 'the list is empty; expected at least the program to run'
            : `expected ${expected}, got ${showValue(input)}`;
      const hint = typeof input === 'string' ? NO_SHELL_HINT : undefined;
      ctx.addIssue({ code: 'custom', input, message, params: hint === undefined ? {} : { hint } });
      return [];
    },
    z.array(argument),
  );
}

/**
 * Extra environment variables: names as for `envName`, values text. A value YAML reads as a
 * number is refused (and not shown, since hook environments often carry credentials).
 */
export function environment(): z.ZodType<Record<string, string>, unknown> {
  return z.unknown().transform((input, ctx) => {
    if (input === null) return {};
    if (typeof input !== 'object' || Array.isArray(input)) {
      ctx.addIssue({ code: 'custom', input, message: `expected a mapping of variable names to values, got ${showValue(input)}`, params: { hint: 'for example: env: { BACKUP_DIR: /var/backups }' } });
      return z.NEVER;
    }
    const out: Record<string, string> = {};
    for (const [key, value] of Object.entries(input as Record<string, unknown>)) {
      if (!ENV_NAME.test(key)) {
        ctx.addIssue({ code: 'custom', path: [key], input: key, message: `\`${key}\` is not an environment variable name; expected letters, digits and \`_\`, not starting with a digit` });
      } else if (typeof value === 'string') {
        out[key] = value;
      } else {
        const scalar = typeof value === 'number' || typeof value === 'boolean';
        const got = scalar ? `a ${typeof value}` : showValue(value);
        const hint = scalar ? `environment values are text; put the value in quotes: ${key}: "..."` : undefined;
        ctx.addIssue({ code: 'custom', path: [key], input: value, message: `expected text, got ${got}`, params: hint === undefined ? {} : { hint } });
      }
    }
    return out;
  });
}
