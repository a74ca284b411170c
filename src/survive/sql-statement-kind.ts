// What one SQL statement does to session state, read from its tokens (sql-lexer.ts). The rules
// are conservative: a statement that could change session state in a way pgwarden cannot
// reproduce is 'sticky' (unknown, temporary objects, session advisory locks), and a form of SET /
// RESET we do not recognise is unknown rather than guessed at. Plain SELECT/INSERT/… — including
// ones that call functions — change nothing, except the few functions named below: a function
// body we cannot see into is assumed not to call set_config() or take a session advisory lock.
//
// Grammar references: PostgreSQL docs, SQL Commands — SET, RESET, LISTEN, UNLISTEN, PREPARE,
// DEALLOCATE, DISCARD, DECLARE, CLOSE, CREATE TABLE/VIEW/SEQUENCE, SELECT INTO, BEGIN/COMMIT/
// ROLLBACK/SAVEPOINT/RELEASE/ROLLBACK TO; gram.y's VariableSetStmt and VariableResetStmt.
import { READ_IN_FULL as READ_IN_FULL_HEADS, type Statement, type Token } from './sql-lexer';

export type StickyWhy = 'unknown' | 'temp' | 'advisory';

export type Effect =
  /** No lasting session state. `tags`: the CommandComplete tags it may answer with, when known. */
  | { readonly k: 'none'; readonly tags?: readonly string[] }
  | { readonly k: 'set'; readonly key: string; readonly text: string }
  | { readonly k: 'reset'; readonly key: string }
  | { readonly k: 'reset-all' }
  | { readonly k: 'listen'; readonly channel: string }
  | { readonly k: 'unlisten'; readonly channel: string }
  | { readonly k: 'unlisten-all' }
  | { readonly k: 'prepare'; readonly name: string; readonly text: string }
  | { readonly k: 'deallocate'; readonly name: string }
  | { readonly k: 'deallocate-all' }
  | { readonly k: 'discard-all' }
  | { readonly k: 'discard-temp' }
  | { readonly k: 'declare-hold'; readonly name: string }
  | { readonly k: 'close'; readonly name: string }
  | { readonly k: 'close-all' }
  | { readonly k: 'begin' }
  | { readonly k: 'commit' }
  | { readonly k: 'rollback' }
  | { readonly k: 'savepoint'; readonly name: string }
  | { readonly k: 'release'; readonly name: string }
  | { readonly k: 'rollback-to'; readonly name: string }
  /** Makes the session unmovable as soon as it is sent, whatever its outcome (conservative). */
  | { readonly k: 'sticky'; readonly why: StickyWhy; readonly reason: string };

export const NONE: Effect = Object.freeze({ k: 'none' });

/** The CommandComplete tags each effect may answer with ("CommandComplete" in Message Formats). */
export function expectedTags(e: Effect): readonly string[] | undefined {
  switch (e.k) {
    case 'none':
      return e.tags;
    case 'set':
      return ['SET'];
    case 'reset':
      return ['RESET', 'SET']; // SET name TO DEFAULT is a reset that answers SET
    case 'reset-all':
      return ['RESET'];
    case 'listen':
      return ['LISTEN'];
    case 'unlisten':
    case 'unlisten-all':
      return ['UNLISTEN'];
    case 'prepare':
      return ['PREPARE'];
    case 'deallocate':
      return ['DEALLOCATE'];
    case 'deallocate-all':
      return ['DEALLOCATE ALL'];
    case 'discard-all':
      return ['DISCARD ALL'];
    case 'discard-temp':
      return ['DISCARD TEMP'];
    case 'declare-hold':
      return ['DECLARE CURSOR'];
    case 'close':
      return ['CLOSE CURSOR'];
    case 'close-all':
      return ['CLOSE CURSOR ALL'];
    case 'begin':
      return ['BEGIN', 'START TRANSACTION'];
    case 'commit':
      return ['COMMIT', 'ROLLBACK']; // COMMIT of a failed transaction answers ROLLBACK
    case 'rollback':
    case 'rollback-to':
      return ['ROLLBACK'];
    case 'savepoint':
      return ['SAVEPOINT'];
    case 'release':
      return ['RELEASE'];
    case 'sticky':
      return undefined;
  }
}

/** Tags that only state-changing statements answer: a plain statement answering one means we lost our place. */
export const STATE_TAGS: ReadonlySet<string> = new Set([
  'SET', 'RESET', 'LISTEN', 'UNLISTEN', 'PREPARE', 'DEALLOCATE', 'DEALLOCATE ALL', 'DISCARD ALL', 'DISCARD TEMP',
  'DISCARD PLANS', 'DISCARD SEQUENCES', 'DECLARE CURSOR', 'CLOSE CURSOR', 'CLOSE CURSOR ALL', 'BEGIN',
  'START TRANSACTION', 'COMMIT', 'ROLLBACK', 'SAVEPOINT', 'RELEASE', 'PREPARE TRANSACTION',
]);

/** Old spellings the server maps to today's names (guc.c, map_old_guc_names). */
const OLD_GUC_NAMES: Readonly<Record<string, string>> = { sort_mem: 'work_mem', vacuum_mem: 'maintenance_work_mem' };

const unknown = (reason: string): Effect => ({ k: 'sticky', why: 'unknown', reason });

/** How a statement's text will be quoted in a log reason: short, one line. */
function excerpt(text: string): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length > 60 ? `${one.slice(0, 57)}…` : one;
}

/** A ColId (word or quoted identifier) at `i`, as the server names it; undefined if there is none. */
function nameAt(tokens: readonly Token[], i: number): string | undefined {
  const t = tokens[i];
  if (t === undefined) return undefined;
  if (t.kind === 'word' || t.kind === 'ident') return t.value;
  return undefined;
}

function isWord(t: Token | undefined, ...words: string[]): boolean {
  return t !== undefined && t.kind === 'word' && words.includes(t.value);
}

/**
 * `textOf`: the statement's text (for replay and reasons), or a function that makes it — called
 * only for the few statements that need it, so a SELECT's text is never copied.
 */
export function classify(st: Statement, textOf: string | (() => string)): Effect {
  const w = st.watched;
  const tk = st.tokens;
  const head = tk[0]!;
  if (head.kind !== 'word') return NONE; // "(SELECT 1)": a word starts every statement that changes state
  if (w.size === 0 && !READ_IN_FULL_HEADS.has(head.value)) return NONE; // the common case: nothing to look at
  const text = typeof textOf === 'string' ? textOf : textOf();
  if (w.has('set_config')) return unknown(`set_config() in "${excerpt(text)}"`);
  if (w.has('pg_advisory_lock') || w.has('pg_advisory_lock_shared') || w.has('pg_try_advisory_lock') || w.has('pg_try_advisory_lock_shared')) {
    return { k: 'sticky', why: 'advisory', reason: 'a session-level advisory lock' };
  }
  switch (head.value) {
    case 'set':
      return classifySet(tk, text);
    case 'reset':
      return classifyReset(tk, text);
    case 'listen':
    case 'unlisten':
      return classifyListen(tk, text);
    case 'prepare':
      return classifyPrepare(tk, text);
    case 'deallocate':
      return classifyDeallocate(tk, text);
    case 'discard':
      return classifyDiscard(tk, text);
    case 'declare':
      return classifyDeclare(st, text);
    case 'close':
      if (isWord(tk[1], 'all') && tk.length === 2) return { k: 'close-all' };
      if (nameAt(tk, 1) !== undefined && tk.length === 2) return { k: 'close', name: nameAt(tk, 1)! };
      return unknown(`a CLOSE pgwarden could not parse: ${excerpt(text)}`);
    case 'begin':
      return { k: 'begin' };
    case 'start':
      return isWord(tk[1], 'transaction') ? { k: 'begin' } : NONE;
    case 'commit':
    case 'end':
      if (isWord(tk[1], 'prepared')) return { k: 'none', tags: ['COMMIT PREPARED'] };
      return { k: 'commit' };
    case 'abort':
    case 'rollback':
      return classifyRollback(tk, text);
    case 'savepoint':
      return nameAt(tk, 1) !== undefined ? { k: 'savepoint', name: nameAt(tk, 1)! } : unknown(`a SAVEPOINT pgwarden could not parse: ${excerpt(text)}`);
    case 'release': {
      const i = isWord(tk[1], 'savepoint') ? 2 : 1;
      return nameAt(tk, i) !== undefined ? { k: 'release', name: nameAt(tk, i)! } : unknown(`a RELEASE pgwarden could not parse: ${excerpt(text)}`);
    }
    case 'create':
      return classifyCreate(st);
    case 'select':
    case 'with':
      // SELECT … INTO TEMP t creates a temporary table; INTO without TEMP a permanent one.
      if (w.has('temp') || w.has('temporary') || w.has('pg_temp')) return { k: 'sticky', why: 'temp', reason: 'a temporary table' };
      return NONE;
    case 'do':
      return unknown('a DO block');
    case 'load':
      return unknown('LOAD of a library');
    default:
      return NONE;
  }
}

function classifySet(tk: readonly Token[], text: string): Effect {
  let i = 1;
  if (isWord(tk[i], 'local')) return { k: 'none', tags: ['SET'] }; // lasts until the end of the transaction
  if (isWord(tk[i], 'session')) {
    if (isWord(tk[i + 1], 'authorization')) return unknown('SET SESSION AUTHORIZATION');
    if (isWord(tk[i + 1], 'characteristics')) return unknown(`a SET pgwarden does not follow: ${excerpt(text)}`);
    i++;
  }
  if (isWord(tk[i], 'transaction') || isWord(tk[i], 'constraints')) return { k: 'none', tags: ['SET', 'SET CONSTRAINTS'] };
  if (isWord(tk[i], 'time') && isWord(tk[i + 1], 'zone')) return valueSet('timezone', tk, i + 2, text);
  if (isWord(tk[i], 'schema')) return valueSet('search_path', tk, i + 1, text);
  if (isWord(tk[i], 'names')) return unknown('a change of client_encoding');
  if (isWord(tk[i], 'xml') && isWord(tk[i + 1], 'option')) return valueSet('xmloption', tk, i + 2, text);
  if (isWord(tk[i], 'seed')) return unknown('SET SEED'); // the generator's later state cannot be rebuilt
  // SET ROLE name (no TO); SET role TO name is the generic form below, with the same key.
  if (isWord(tk[i], 'role') && !(isWord(tk[i + 1], 'to') || tk[i + 1]?.value === '=')) return valueSet('role', tk, i + 1, text);
  // generic: var_name {TO | =} value[, …] | var_name FROM CURRENT
  const parsed = varName(tk, i);
  if (parsed === undefined) return unknown(`a SET pgwarden could not parse: ${excerpt(text)}`);
  const [key, next] = parsed;
  if (isWord(tk[next], 'from') && isWord(tk[next + 1], 'current')) return unknown('SET … FROM CURRENT');
  if (!(isWord(tk[next], 'to') || tk[next]?.value === '=')) return unknown(`a SET pgwarden could not parse: ${excerpt(text)}`);
  return valueSet(key, tk, next + 1, text);
}

/** A dotted GUC name at `i`, lower-cased (GUC lookup ignores case), and the index after it. */
function varName(tk: readonly Token[], i: number): [string, number] | undefined {
  const parts: string[] = [];
  for (;;) {
    const n = nameAt(tk, i);
    if (n === undefined) return undefined;
    parts.push(n.toLowerCase());
    i++;
    if (tk[i]?.kind === 'op' && tk[i]!.value === '.') i++;
    else break;
  }
  const key = parts.join('.');
  return [OLD_GUC_NAMES[key] ?? key, i];
}

/** SET of `key` whose value starts at token `i`; the replay re-sends the statement's own text. */
function valueSet(key: string, tk: readonly Token[], i: number, text: string): Effect {
  if (key === 'client_encoding') return unknown('a change of client_encoding');
  if (key === 'session_authorization') return unknown('SET SESSION AUTHORIZATION');
  if (key === 'seed') return unknown('SET SEED');
  if (key.startsWith('transaction_')) return { k: 'none', tags: ['SET'] }; // only the current transaction
  if (i >= tk.length) return unknown(`a SET pgwarden could not parse: ${excerpt(text)}`);
  // Values are words, strings, numbers (maybe signed) and commas; INTERVAL '…' HOUR TO MINUTE for
  // a time zone. Anything else (parentheses, parameters) is a form we do not know.
  for (let j = i; j < tk.length; j++) {
    const t = tk[j]!;
    if (t.kind === 'param' || (t.kind === 'op' && t.value !== ',' && t.value !== '-' && t.value !== '+' && t.value !== '.')) {
      return unknown(`a SET pgwarden could not parse: ${excerpt(text)}`);
    }
  }
  if (tk.length === i + 1 && isWord(tk[i], 'default')) return { k: 'reset', key };
  return { k: 'set', key, text };
}

function classifyReset(tk: readonly Token[], text: string): Effect {
  if (isWord(tk[1], 'all') && tk.length === 2) return { k: 'reset-all' };
  if (isWord(tk[1], 'time') && isWord(tk[2], 'zone') && tk.length === 3) return { k: 'reset', key: 'timezone' };
  if (isWord(tk[1], 'session') && isWord(tk[2], 'authorization')) return unknown('RESET SESSION AUTHORIZATION');
  if (isWord(tk[1], 'transaction')) return { k: 'none', tags: ['RESET'] };
  const parsed = varName(tk, 1);
  if (parsed === undefined || parsed[1] !== tk.length) return unknown(`a RESET pgwarden could not parse: ${excerpt(text)}`);
  const key = parsed[0];
  if (key === 'client_encoding') return unknown('a change of client_encoding');
  if (key === 'session_authorization') return unknown('RESET SESSION AUTHORIZATION');
  if (key === 'seed') return unknown('SET SEED');
  if (key.startsWith('transaction_')) return { k: 'none', tags: ['RESET'] };
  return { k: 'reset', key };
}

function classifyListen(tk: readonly Token[], text: string): Effect {
  const verb = tk[0]!.value;
  if (verb === 'unlisten' && tk.length === 2 && tk[1]!.kind === 'op' && tk[1]!.value === '*') return { k: 'unlisten-all' };
  const channel = nameAt(tk, 1);
  if (channel === undefined || tk.length !== 2) return unknown(`a ${verb.toUpperCase()} pgwarden could not parse: ${excerpt(text)}`);
  return verb === 'listen' ? { k: 'listen', channel } : { k: 'unlisten', channel };
}

function classifyPrepare(tk: readonly Token[], text: string): Effect {
  if (isWord(tk[1], 'transaction')) return unknown('PREPARE TRANSACTION');
  const name = nameAt(tk, 1);
  if (name === undefined) return unknown(`a PREPARE pgwarden could not parse: ${excerpt(text)}`);
  return { k: 'prepare', name, text };
}

function classifyDeallocate(tk: readonly Token[], text: string): Effect {
  const i = isWord(tk[1], 'prepare') ? 2 : 1;
  if (isWord(tk[i], 'all') && tk.length === i + 1) return { k: 'deallocate-all' };
  const name = nameAt(tk, i);
  if (name === undefined || tk.length !== i + 1) return unknown(`a DEALLOCATE pgwarden could not parse: ${excerpt(text)}`);
  return { k: 'deallocate', name };
}

function classifyDiscard(tk: readonly Token[], text: string): Effect {
  if (tk.length === 2 && isWord(tk[1], 'all')) return { k: 'discard-all' };
  if (tk.length === 2 && isWord(tk[1], 'temp', 'temporary')) return { k: 'discard-temp' };
  if (tk.length === 2 && isWord(tk[1], 'plans')) return { k: 'none', tags: ['DISCARD PLANS'] };
  if (tk.length === 2 && isWord(tk[1], 'sequences')) return { k: 'none', tags: ['DISCARD SEQUENCES'] };
  return unknown(`a DISCARD pgwarden could not parse: ${excerpt(text)}`);
}

/** DECLARE name [BINARY] [ASENSITIVE|INSENSITIVE] [[NO] SCROLL] CURSOR [{WITH|WITHOUT} HOLD] FOR query */
function classifyDeclare(st: Statement, text: string): Effect {
  const tk = st.tokens;
  const name = nameAt(tk, 1);
  if (name === undefined) return unknown(`a DECLARE pgwarden could not parse: ${excerpt(text)}`);
  for (let i = 2; i < tk.length; i++) {
    if (isWord(tk[i], 'for')) return { k: 'none', tags: ['DECLARE CURSOR'] };
    if (isWord(tk[i], 'with') && isWord(tk[i + 1], 'hold')) return { k: 'declare-hold', name };
  }
  return unknown(`a DECLARE pgwarden could not parse: ${excerpt(text)}`);
}

function classifyRollback(tk: readonly Token[], text: string): Effect {
  if (isWord(tk[1], 'prepared')) return { k: 'none', tags: ['ROLLBACK PREPARED'] };
  let i = 1;
  if (isWord(tk[i], 'work', 'transaction')) i++;
  if (!isWord(tk[i], 'to')) return { k: 'rollback' };
  i++;
  if (isWord(tk[i], 'savepoint')) i++;
  const name = nameAt(tk, i);
  return name !== undefined ? { k: 'rollback-to', name } : unknown(`a ROLLBACK TO pgwarden could not parse: ${excerpt(text)}`);
}

/**
 * CREATE … with TEMP / TEMPORARY / pg_temp anywhere makes a temporary object (conservative: a
 * word TEMP in a column name counts too), unless it is a table that goes away ON COMMIT DROP.
 */
function classifyCreate(st: Statement): Effect {
  const w = st.watched;
  if (!(w.has('temp') || w.has('temporary') || w.has('pg_temp'))) return NONE;
  const tk = st.tokens;
  if (!st.truncated && !w.has('pg_temp')) {
    for (let i = 0; i + 2 < tk.length; i++) {
      if (isWord(tk[i], 'on') && isWord(tk[i + 1], 'commit') && isWord(tk[i + 2], 'drop')) return { k: 'none', tags: ['CREATE TABLE', 'SELECT'] };
    }
  }
  return { k: 'sticky', why: 'temp', reason: 'a temporary table' };
}
