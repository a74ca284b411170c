// Splits the SQL text of a simple Query (or a Parse) into statements and their leading tokens,
// the way PostgreSQL's own scanner (src/backend/parser/scan.l) sees them, so that the session
// state tracker can tell a SET or LISTEN from a SELECT. It works on the bytes, not on a decoded
// string: every byte that matters to the syntax is ASCII, and the multi-byte characters of the
// server-safe encodings (UTF-8, EUC-*, LATINn …) never contain an ASCII byte. (The client-only
// encodings SJIS, BIG5, GBK, UHC, GB18030 and JOHAB can; the tracker refuses to follow those.)
//
// What it respects: '…' strings ('' inside; backslash escapes too when standard_conforming_strings
// is off), E'…' escape strings, "quoted identifiers" ("" inside), dollar quoting $tag$…$tag$,
// -- line comments and nested /* block comments */. A ';' outside all of those ends a
// statement; empty statements are dropped, as the server's grammar drops them. The server parses
// the whole string before running any of it, so a ';' inside parentheses (a syntax error) cannot
// make us disagree about a statement that runs. The one construct that does hold top-level ';' is
// a SQL-standard function body (BEGIN ATOMIC … END), followed here with psql's own rule; the
// tracker checks every CommandComplete tag against what it expected, so a disagreement is seen.
//
// Pure and bounded: one pass over the bytes, at most MAX_TOKENS tokens kept per statement (a
// multi-megabyte INSERT keeps its first few hundred); past that only the watched words are noted.

export type TokenKind = 'word' | 'ident' | 'string' | 'number' | 'param' | 'op';

export interface Token {
  readonly kind: TokenKind;
  /** word: lower-cased (ASCII, as the scanner folds keywords); ident: the name with "" undone; op: the character; others: the raw bytes as latin1. */
  readonly value: string;
  readonly start: number;
  readonly end: number;
}

export interface Statement {
  /** Byte offsets into the text, from the first token's start to the last token's end. */
  readonly start: number;
  readonly end: number;
  /** The first MAX_TOKENS tokens; only the first one unless the first word is one the classifier reads. */
  readonly tokens: readonly Token[];
  /** True when the statement had more tokens than were kept. */
  readonly truncated: boolean;
  /** Which of WATCHED_WORDS occur anywhere in the statement (as a word or a quoted identifier). */
  readonly watched: ReadonlySet<string>;
}

export const MAX_TOKENS = 512;

/**
 * Statements whose first word is one of these keep their tokens: the classifier reads them. The
 * rest (SELECT, INSERT, UPDATE, … — nearly all traffic) keep only their first token and the
 * watched words, so the common case allocates almost nothing.
 */
export const READ_IN_FULL: ReadonlySet<string> = new Set([
  'set', 'reset', 'listen', 'unlisten', 'prepare', 'deallocate', 'discard', 'declare', 'close', 'begin', 'start',
  'commit', 'end', 'abort', 'rollback', 'savepoint', 'release', 'create', 'do', 'load',
]);

/**
 * Words that change session state from anywhere in a statement (a function called inside a
 * SELECT) or whose position may lie beyond the kept tokens.
 */
export const WATCHED_WORDS: ReadonlySet<string> = new Set([
  'set_config',
  'pg_advisory_lock',
  'pg_advisory_lock_shared',
  'pg_try_advisory_lock',
  'pg_try_advisory_lock_shared',
  'temp',
  'temporary',
  'pg_temp',
]);

const NO_WATCHED: ReadonlySet<string> = new Set();
/** Lengths of the watched words: a word of another length is not looked at. */
const WATCHED_LENGTHS: ReadonlySet<number> = new Set([...WATCHED_WORDS].map((w) => w.length));

const SEMI = 0x3b;
const QUOTE = 0x27;
const DQUOTE = 0x22;
const DOLLAR = 0x24;
const BACKSLASH = 0x5c;
const DASH = 0x2d;
const SLASH = 0x2f;
const STAR = 0x2a;
const DOT = 0x2e;
const NL = 0x0a;

function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}
function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}
/** ident_start in scan.l: letters, '_', and any high-bit byte. */
function isIdentStart(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f || c >= 0x80;
}
/** ident_cont in scan.l: ident_start, digits, '$'. */
function isIdentCont(c: number): boolean {
  return isIdentStart(c) || isDigit(c) || c === DOLLAR;
}
/** An unquoted word as the server names it: ASCII letters folded (downcase_identifier), other bytes kept, UTF-8. */
function foldWord(buf: Buffer, start: number, end: number): string {
  let ascii = true;
  for (let i = start; i < end; i++) {
    if (buf[i]! >= 0x80) {
      ascii = false;
      break;
    }
  }
  const s = buf.toString(ascii ? 'latin1' : 'utf8', start, end);
  return ascii ? s.toLowerCase() : s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

/** End (exclusive) of a '…' string whose opening quote is at `i`; `escapes`: backslash escapes a byte. */
function skipQuoted(buf: Buffer, i: number, end: number, quote: number, escapes: boolean): number {
  let j = i + 1;
  while (j < end) {
    const c = buf[j]!;
    if (escapes && c === BACKSLASH) {
      j += 2;
      continue;
    }
    if (c === quote) {
      if (j + 1 < end && buf[j + 1] === quote) {
        j += 2;
        continue;
      }
      return j + 1;
    }
    j++;
  }
  return end; // unterminated: the server reports the error; nothing after it runs
}

/** If a dollar-quote opener ($$ or $tag$) starts at `i`, the end of the whole quoted string; else -1. */
function skipDollarQuoted(buf: Buffer, i: number, end: number): number {
  let j = i + 1;
  if (j < end && isIdentStart(buf[j]!)) {
    j++;
    while (j < end && (isIdentStart(buf[j]!) || isDigit(buf[j]!))) j++;
  }
  if (j >= end || buf[j] !== DOLLAR) return -1;
  const tag = buf.subarray(i, j + 1);
  const close = buf.indexOf(tag, j + 1);
  return close < 0 || close + tag.length > end ? end : close + tag.length;
}

/** Splits `buf[0, end)` into statements. `standardStrings` is the session's standard_conforming_strings. */
export function splitStatements(buf: Buffer, end = buf.length, standardStrings = true): Statement[] {
  const out: Statement[] = [];
  let tokens: Token[] = [];
  let truncated = false;
  let watched: Set<string> | undefined;
  let first = -1;
  let last = -1;
  // psql's rule (psqlscan.l) for SQL-standard function bodies: inside CREATE [OR REPLACE]
  // FUNCTION/PROCEDURE, BEGIN … END (and CASE … END within it) nest, and a ';' inside does not
  // end the statement.
  let routine = false;
  let depth = 0;
  /** Whether this statement's tokens are kept (decided by its first word). */
  let full = true;
  /** A token's value is computed only when the token is kept or could be a watched word. */
  const valueOf = (kind: TokenKind, start: number, stop: number): string => {
    if (kind === 'word') return foldWord(buf, start, stop);
    if (kind === 'ident') return buf.toString('utf8', start + 1, Math.max(start + 1, stop - 1)).replace(/""/g, '"');
    return buf.toString('latin1', start, stop);
  };
  const push = (kind: TokenKind, start: number, stop: number) => {
    if (first < 0) {
      first = start;
      const v = valueOf(kind, start, stop);
      full = kind === 'word' && READ_IN_FULL.has(v);
      tokens.push({ kind, value: v, start, end: stop });
      last = stop;
      return;
    }
    last = stop;
    let value: string | undefined;
    if ((kind === 'word' || kind === 'ident') && WATCHED_LENGTHS.has(kind === 'word' ? stop - start : stop - start - 2)) {
      value = valueOf(kind, start, stop);
      if (WATCHED_WORDS.has(value)) (watched ??= new Set()).add(value);
    }
    if (!full) return;
    value ??= valueOf(kind, start, stop);
    if (kind === 'word') {
      const n = tokens.length;
      if ((value === 'function' || value === 'procedure') && n >= 1 && n <= 3 && tokens[0]!.value === 'create') routine = n === 1 || (n === 3 && tokens[1]!.value === 'or' && tokens[2]!.value === 'replace');
      else if (routine && value === 'begin') depth++;
      else if (depth > 0 && value === 'case') depth++;
      else if (depth > 0 && value === 'end') depth--;
    }
    if (tokens.length < MAX_TOKENS) tokens.push({ kind, value, start, end: stop });
    else truncated = true;
  };
  const finish = () => {
    if (first >= 0) out.push({ start: first, end: last, tokens, truncated: truncated || !full, watched: watched ?? NO_WATCHED });
    tokens = [];
    truncated = false;
    watched = undefined;
    first = -1;
    last = -1;
    routine = false;
    depth = 0;
  };

  let i = 0;
  while (i < end) {
    const c = buf[i]!;
    if (isSpace(c)) {
      i++;
    } else if (c === SEMI) {
      if (depth > 0) push('op', i, i + 1);
      else finish();
      i++;
    } else if (c === DASH && buf[i + 1] === DASH && i + 1 < end) {
      const nl = buf.indexOf(NL, i + 2);
      i = nl < 0 || nl >= end ? end : nl + 1;
    } else if (c === SLASH && buf[i + 1] === STAR && i + 1 < end) {
      let depth = 1;
      let j = i + 2;
      while (j < end && depth > 0) {
        if (buf[j] === SLASH && buf[j + 1] === STAR && j + 1 < end) {
          depth++;
          j += 2;
        } else if (buf[j] === STAR && buf[j + 1] === SLASH && j + 1 < end) {
          depth--;
          j += 2;
        } else j++;
      }
      i = j;
    } else if (c === QUOTE) {
      const stop = skipQuoted(buf, i, end, QUOTE, !standardStrings);
      push('string', i, stop);
      i = stop;
    } else if (c === DQUOTE) {
      const stop = skipQuoted(buf, i, end, DQUOTE, false);
      push('ident', i, stop);
      i = stop;
    } else if (c === DOLLAR) {
      if (isDigit(buf[i + 1] ?? 0) && i + 1 < end) {
        let j = i + 1;
        while (j < end && isDigit(buf[j]!)) j++;
        push('param', i, j);
        i = j;
      } else {
        const stop = skipDollarQuoted(buf, i, end);
        if (stop < 0) {
          push('op', i, i + 1);
          i++;
        } else {
          push('string', i, stop);
          i = stop;
        }
      }
    } else if (isDigit(c) || (c === DOT && isDigit(buf[i + 1] ?? 0) && i + 1 < end)) {
      let j = i + 1;
      while (j < end) {
        const d = buf[j]!;
        const prev = buf[j - 1]!;
        if (isDigit(d) || d === DOT || d === 0x5f || (d >= 0x41 && d <= 0x5a) || (d >= 0x61 && d <= 0x7a)) j++;
        else if ((d === 0x2b || d === DASH) && (prev === 0x65 || prev === 0x45)) j++; // 1e-5
        else break;
      }
      push('number', i, j);
      i = j;
    } else if (isIdentStart(c)) {
      let j = i + 1;
      while (j < end && isIdentCont(buf[j]!)) j++;
      // E'…' is an escape string (backslashes escape even with standard_conforming_strings on);
      // B'…', X'…', N'…' are ordinary quoting.
      if (j === i + 1 && buf[j] === QUOTE && j < end) {
        const escape = c === 0x45 || c === 0x65 || !standardStrings;
        const stop = skipQuoted(buf, j, end, QUOTE, escape);
        push('string', i, stop);
        i = stop;
      } else {
        push('word', i, j);
        i = j;
      }
    } else {
      push('op', i, i + 1);
      i++;
    }
  }
  finish();
  return out;
}

/** A name as a double-quoted SQL identifier: always quoted, so case and any character survive. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
