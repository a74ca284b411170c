// PostgreSQL write-ahead-log positions (pg_lsn) as bigints.
// The text form is two hexadecimal 32-bit halves, "%X/%X" (src/backend/utils/adt/pg_lsn.c),
// e.g. "16/B374D848" = 0x16_B374D848. A bigint keeps the full 64 bits exact, so byte distances
// between two servers (replication lag in bytes) are plain subtraction.

const LSN_PATTERN = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;
const MAX_LSN = (1n << 64n) - 1n;

export class InvalidLsnError extends Error {
  readonly code = 'ERR_INVALID_LSN';
  constructor(readonly input: string) {
    super(`invalid LSN ${JSON.stringify(input)}: expected two hexadecimal halves like "16/B374D848"`);
    this.name = 'InvalidLsnError';
  }
}

/** Parses "hi/lo" (the pg_lsn text form) into a 64-bit byte position. */
export function parseLsn(text: string): bigint {
  const match = LSN_PATTERN.exec(text.trim());
  if (match === null) throw new InvalidLsnError(text);
  return (BigInt('0x' + match[1]) << 32n) | BigInt('0x' + match[2]);
}

/** Formats a byte position the way PostgreSQL prints a pg_lsn ("%X/%X", upper case, unpadded). */
export function formatLsn(lsn: bigint): string {
  if (lsn < 0n || lsn > MAX_LSN) throw new RangeError(`LSN out of range: ${lsn}`);
  const hi = lsn >> 32n;
  const lo = lsn & 0xffffffffn;
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`;
}
