// Pure parsers for the quantities a configuration file is written in: durations (to
// milliseconds), sizes (to bytes), fractions (`0.1` or `10%`), percentages (`80%`) and a
// replication-lag limit that may be a size or a duration. No I/O. A value that does not
// parse throws ConfigValueError, which the schema reports at the key where it was written.
//
// Units follow PostgreSQL's own configuration files ("Parameter Names and Values" in the
// PostgreSQL manual): memory units are powers of 1024 and case-sensitive, so `16MB` means
// what it means in postgresql.conf.

import { ConfigValueError } from '../errors';
import { showValue } from './show-value';

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  min: 60_000, // PostgreSQL spells minutes `min`
  h: 3_600_000,
  d: 86_400_000,
};

const SIZE_UNITS: Readonly<Record<string, number>> = {
  B: 1,
  kB: 1024,
  KB: 1024,
  MB: 1024 ** 2,
  GB: 1024 ** 3,
  TB: 1024 ** 4,
};

/** Words people write for a unit, mapped to the unit we accept; used only for hints. */
const UNIT_SPELLINGS: Readonly<Record<string, string>> = {
  msec: 'ms', msecs: 'ms', millisecond: 'ms', milliseconds: 'ms',
  sec: 's', secs: 's', second: 's', seconds: 's',
  mins: 'm', minute: 'm', minutes: 'm',
  hr: 'h', hrs: 'h', hour: 'h', hours: 'h',
  day: 'd', days: 'd',
  b: 'B', byte: 'B', bytes: 'B',
  k: 'kB', kb: 'kB', kib: 'kB',
  mb: 'MB', mib: 'MB',
  g: 'GB', gb: 'GB', gib: 'GB',
  t: 'TB', tb: 'TB', tib: 'TB',
};

const DURATION_EXAMPLE = '`250ms`, `1s`, `1.5s`, `2m` or `1h`';
const SIZE_EXAMPLE = '`512kB`, `16MB` or `1GB`';

interface Quantity {
  readonly amount: number;
  readonly unit: string;
}

/** `"1.5 s"` → {amount: 1.5, unit: 's'}; `"250"` → {amount: 250, unit: ''}; otherwise undefined. */
function splitQuantity(text: string): Quantity | undefined {
  const match = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*([A-Za-z%]*)$/.exec(text.trim());
  if (match === null) return undefined;
  return { amount: Number(match[1]), unit: match[2] ?? '' };
}

/** Rounds away binary floating-point noise (`0.1h` is 360000, not 360000.00000000006). */
function tidy(value: number): number {
  return Math.round(value * 1000) / 1000;
}

function unitHint(unit: string, accepted: Readonly<Record<string, number>>, amount: number): string | undefined {
  const lower = unit.toLowerCase();
  const candidates = [
    UNIT_SPELLINGS[lower],
    Object.keys(accepted).find((u) => u.toLowerCase() === lower),
    lower === 'm' ? 'MB' : undefined, // `16M` in a size
  ];
  const fix = candidates.find((c): c is string => c !== undefined && unitFactor(accepted, c) !== undefined);
  if (fix === undefined) return undefined;
  const why = fix.toLowerCase() === lower ? '; units are case-sensitive, as in PostgreSQL' : '';
  return `write \`${amount}${fix}\`${why}`;
}

/** Own keys only: a unit spelled `constructor` is not a unit. */
function unitFactor(table: Readonly<Record<string, number>>, unit: string): number | undefined {
  return Object.hasOwn(table, unit) ? table[unit] : undefined;
}

/** A duration in milliseconds: a number is milliseconds, a string needs a unit (ms, s, m, h, d). */
export function parseDuration(value: unknown): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new ConfigValueError(`expected a duration like ${DURATION_EXAMPLE}, got ${showValue(value)}`);
    if (value < 0) throw new ConfigValueError(`a duration must not be negative, got ${value}`);
    return tidy(value);
  }
  if (typeof value !== 'string') {
    throw new ConfigValueError(`expected a duration like ${DURATION_EXAMPLE}, got ${showValue(value)}`);
  }
  const quantity = splitQuantity(value);
  if (quantity === undefined) {
    throw new ConfigValueError(`expected a duration like ${DURATION_EXAMPLE}, got ${showValue(value)}`);
  }
  const { amount, unit } = quantity;
  if (amount < 0) throw new ConfigValueError(`a duration must not be negative, got ${showValue(value)}`);
  if (unit === '') {
    throw new ConfigValueError(
      `a duration in quotes needs a unit, got ${showValue(value)}`,
      `write \`${amount}ms\` or \`${amount}s\`; a bare number without quotes is milliseconds`,
    );
  }
  const factor = unitFactor(DURATION_UNITS, unit);
  if (factor === undefined) {
    throw new ConfigValueError(
      `unknown duration unit \`${unit}\` in ${showValue(value)}; expected ms, s, m, h or d`,
      unitHint(unit, DURATION_UNITS, amount),
    );
  }
  return tidy(amount * factor);
}

/** A size in bytes: a number is bytes, a string needs a unit (B, kB/KB, MB, GB, TB; powers of 1024). */
export function parseSize(value: unknown): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new ConfigValueError(`expected a size like ${SIZE_EXAMPLE}, got ${showValue(value)}`);
    if (value < 0) throw new ConfigValueError(`a size must not be negative, got ${value}`);
    return Math.round(value);
  }
  if (typeof value !== 'string') {
    throw new ConfigValueError(`expected a size like ${SIZE_EXAMPLE}, got ${showValue(value)}`);
  }
  const quantity = splitQuantity(value);
  if (quantity === undefined) throw new ConfigValueError(`expected a size like ${SIZE_EXAMPLE}, got ${showValue(value)}`);
  const { amount, unit } = quantity;
  if (amount < 0) throw new ConfigValueError(`a size must not be negative, got ${showValue(value)}`);
  if (unit === '') {
    throw new ConfigValueError(
      `a size in quotes needs a unit, got ${showValue(value)}`,
      `write \`${amount}B\` or \`${amount}kB\`; a bare number without quotes is bytes`,
    );
  }
  const factor = unitFactor(SIZE_UNITS, unit);
  if (factor === undefined) {
    throw new ConfigValueError(
      `unknown size unit \`${unit}\` in ${showValue(value)}; expected B, kB, MB, GB or TB`,
      unitHint(unit, SIZE_UNITS, amount),
    );
  }
  return Math.round(amount * factor);
}

/** A fraction 0..1, written as a number (`0.1`) or a percentage string (`10%`). */
export function parseFraction(value: unknown): number {
  let fraction: number | undefined;
  if (typeof value === 'number' && Number.isFinite(value)) {
    fraction = value;
  } else if (typeof value === 'string') {
    const quantity = splitQuantity(value);
    if (quantity !== undefined && quantity.unit === '%') fraction = tidy(quantity.amount / 100);
  }
  if (fraction === undefined) {
    throw new ConfigValueError(`expected a fraction from 0 to 1 (like \`0.1\`) or a percentage (like \`10%\`), got ${showValue(value)}`);
  }
  if (fraction < 0 || fraction > 1) {
    const percentHint = typeof value === 'number' && value > 1 && value <= 100 ? `for ${value} percent write \`${value}%\`` : undefined;
    throw new ConfigValueError(`must be from 0 to 1 (0% to 100%), got ${showValue(value)}`, percentHint);
  }
  return fraction;
}

/**
 * A percentage from 1 to 100, written `80%` or `80` (both mean 80 percent). A number below
 * 1 is refused rather than read as a fraction: `0.8` is more likely 80% than 0.8%.
 */
export function parsePercent(value: unknown): number {
  let percent: number | undefined;
  if (typeof value === 'number' && Number.isFinite(value)) {
    percent = value;
  } else if (typeof value === 'string') {
    const quantity = splitQuantity(value);
    if (quantity !== undefined && quantity.unit === '%') percent = quantity.amount;
    else if (quantity !== undefined && quantity.unit === '') {
      throw new ConfigValueError(`a percentage in quotes needs \`%\`, got ${showValue(value)}`, `write \`${quantity.amount}%\``);
    }
  }
  if (percent === undefined) {
    throw new ConfigValueError(`expected a percentage from 1 to 100 like \`80%\`, got ${showValue(value)}`);
  }
  if (percent < 1 || percent > 100) {
    const hint = typeof value === 'number' && percent > 0 && percent < 1 ? `for ${tidy(percent * 100)} percent write \`${tidy(percent * 100)}%\`` : undefined;
    throw new ConfigValueError(`must be from 1% to 100%, got ${showValue(value)}`, hint);
  }
  return percent;
}

export type ReplicaLagLimit = { readonly bytes: number } | { readonly ms: number };

/**
 * How far behind a replica may be: a size (`16MB`, or a bare number of bytes) limits the WAL
 * replay distance, a duration (`10s`) limits the replay delay.
 */
export function parseReplicaLag(value: unknown): ReplicaLagLimit {
  if (typeof value === 'string') {
    const quantity = splitQuantity(value);
    if (quantity !== undefined && unitFactor(DURATION_UNITS, quantity.unit) !== undefined) return { ms: parseDuration(value) };
    if (quantity !== undefined && unitFactor(SIZE_UNITS, quantity.unit) !== undefined) return { bytes: parseSize(value) };
    const hint =
      quantity === undefined ? undefined : unitHint(quantity.unit, { ...SIZE_UNITS, ...DURATION_UNITS }, quantity.amount);
    throw new ConfigValueError(
      `expected a size (bytes, like ${SIZE_EXAMPLE}) or a duration (like \`10s\`), got ${showValue(value)}`,
      hint,
    );
  }
  if (typeof value === 'number') return { bytes: parseSize(value) };
  throw new ConfigValueError(`expected a size (like ${SIZE_EXAMPLE}) or a duration (like \`10s\`), got ${showValue(value)}`);
}

/** 250 → `250ms`, 1500 → `1.5s`, 120000 → `2m`: the shortest faithful spelling. */
export function formatDuration(ms: number): string {
  for (const [unit, factor] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1_000]] as const) {
    if (ms >= factor && ms % factor === 0) return `${ms / factor}${unit}`;
  }
  return ms >= 1_000 ? `${tidy(ms / 1_000)}s` : `${ms}ms`;
}

/** 16777216 → `16MB`; a size that is not a whole number of a unit stays in bytes. */
export function formatSize(bytes: number): string {
  for (const [unit, factor] of [['TB', 1024 ** 4], ['GB', 1024 ** 3], ['MB', 1024 ** 2], ['kB', 1024]] as const) {
    if (bytes >= factor && bytes % factor === 0) return `${bytes / factor}${unit}`;
  }
  return `${bytes}B`;
}
