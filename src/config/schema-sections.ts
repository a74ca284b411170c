// The building blocks of the configuration schema (schema.ts): a section that reports each unknown
// key as an issue of its own with a "did you mean" and the sections that do accept it, optional
// and present sections, and lists that must not be empty.
import { z } from 'zod';
import { didYouMean } from './did-you-mean';
import { showValue } from './show-value';

/** Extra data on an unknown-key issue; load.ts writes the message once the full path is known. */
export interface UnknownKeyParams {
  readonly kind: 'unknown_key';
  readonly suggestion?: string;
  readonly hint?: string;
}

/** For each key, the sections that accept it: `interval` written at the top level belongs under `health`. */
const KEY_HOMES = new Map<string, string[]>();

/** Every key a configuration file may use, with the sections that accept it ('' is the top level). */
export const CONFIG_KEYS: ReadonlyMap<string, readonly string[]> = KEY_HOMES;

function homeLabel(where: string): string {
  if (where === '') return 'the top level';
  if (where.endsWith('[]')) return `each entry of \`${where.slice(0, -2)}\``;
  return `\`${where}\``;
}

/** `a`, `a or b`, `a, b or c`. */
function listWithOr(items: readonly string[]): string {
  return items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} or ${items.at(-1)}`;
}

function unknownKeyParams(key: string, where: string, known: readonly string[], own: Readonly<Record<string, string>>): UnknownKeyParams {
  if (Object.hasOwn(own, key)) return { kind: 'unknown_key', hint: own[key]! };
  // A key that is right but in the wrong place says where it goes; only a close misspelling
  // of a local key is offered beside that (`timeout` under `failover` is not `queue_timeout`).
  // Sections nearest the top first: `health` before `health.agent`.
  const depth = (home: string) => home.split('.').length;
  const homes = (KEY_HOMES.get(key) ?? []).filter((home) => home !== where).sort((a, b) => depth(a) - depth(b));
  const suggestion = didYouMean(key, known, { substrings: homes.length === 0 });
  const hint =
    homes.length > 0
      ? `\`${key}\` belongs under ${listWithOr(homes.map(homeLabel))}`
      : suggestion === undefined
        ? `valid keys here: ${known.join(', ')}`
        : undefined;
  return { kind: 'unknown_key', ...(suggestion === undefined ? {} : { suggestion }), ...(hint === undefined ? {} : { hint }) };
}

export function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * A mapping that accepts only the keys of `shape`; `where` names it in hints. `refused` gives
 * the hint for a key this section refuses on purpose, where a key of the same name elsewhere
 * would otherwise be suggested (`password` under `coordination.etcd` is not `health.password`).
 */
export function section<S extends z.ZodRawShape>(where: string, shape: S, refused: Readonly<Record<string, string>> = {}) {
  const known = Object.keys(shape);
  for (const key of known) KEY_HOMES.set(key, [...(KEY_HOMES.get(key) ?? []), where]);
  const keys = known.map((k) => `\`${k}\``).join(', ');
  return z
    .looseObject(shape, {
      error: (issue) => (issue.code === 'invalid_type' ? `expected a mapping with keys ${keys}, got ${showValue(issue.input)}` : undefined),
    })
    .superRefine(
      (value, ctx) => {
        if (!isMapping(value)) return;
        for (const key of Object.keys(value)) {
          if (Object.hasOwn(shape, key)) continue;
          ctx.addIssue({ code: 'custom', path: [key], message: `unknown key \`${key}\``, params: unknownKeyParams(key, where, known, refused) });
        }
      },
      // Report unknown keys even when a known key in the same mapping is wrong.
      { when: () => true },
    );
}

/** A section that may be omitted or left empty (`health:` with everything commented out). */
export function optionalSection<T extends z.ZodType>(schema: T) {
  return z.preprocess((value) => (value === null ? undefined : value), schema.prefault({} as z.input<T>));
}

/**
 * A section whose presence means something (`admin`: no admin API without it): absent stays
 * undefined, while an empty `admin:` means "on, with every default".
 */
export function presentSection<T extends z.ZodType>(schema: T) {
  return z.preprocess((value) => (value === null ? {} : value), schema.optional());
}

/**
 * A list with at least one entry; `example` shows the smallest valid entry. For a list of
 * words (`ofWords`), a single word gets a hint to write it as a list.
 */
export function nonEmptyList<T extends z.ZodType>(item: T, noun: string, example: string, ofWords = false) {
  return z.preprocess(
    (value, ctx) => {
      if (value === undefined || value === null || (Array.isArray(value) && value.length === 0)) {
        ctx.addIssue({ code: 'custom', input: value, message: `at least one ${noun} is required`, params: { hint: `for example: ${example}` } });
        return [];
      }
      if (ofWords && typeof value === 'string') {
        ctx.addIssue({ code: 'custom', input: value, message: `expected a list of ${noun}s, got ${showValue(value)}`, params: { hint: `write it as a list: [${value}]` } });
        return [];
      }
      return value;
    },
    z.array(item, { error: (issue) => `expected a list of ${noun}s, got ${showValue(issue.input)}` }),
  );
}
