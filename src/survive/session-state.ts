// The state of one session as the server has confirmed it: committed SETs, LISTEN channels,
// prepared statements, WITH HOLD cursors, and what makes the session unmovable. SET, RESET and
// LISTEN/UNLISTEN are transactional in PostgreSQL: they wait in `ops` until their transaction
// commits, and a rollback (or ROLLBACK TO SAVEPOINT) undoes them. Prepared statements, cursors
// WITH HOLD, advisory locks and temporary-object flags are not undone by a rollback (or, for the
// flags, we do not try): they change the committed state at once.
//
// Bounded: past MAX_PREPARED statements, MAX_CHANNELS channels, MAX_TEXT characters of SQL text
// to replay, or MAX_OPS uncommitted changes, the session is "too much state to rebuild" for good
// and the maps are emptied.
import type { ReplayStep } from './contracts';
import type { Effect } from './sql-statement-kind';
import { quoteIdent } from './sql-lexer';

export const MAX_PREPARED = 1000;
export const MAX_CHANNELS = 1000;
export const MAX_HOLD_CURSORS = 1000;
export const MAX_TEXT = 64 * 1024;
export const MAX_OPS = 10_000;

/** Settings RESET ALL leaves alone (guc_tables.c, GUC_NO_RESET_ALL); DISCARD ALL clears them too. */
const NO_RESET_ALL: ReadonlySet<string> = new Set(['role']);

type TransactionalOp = Extract<Effect, { k: 'set' | 'reset' | 'reset-all' | 'listen' | 'unlisten' | 'unlisten-all' }>;

/** A prepared statement and how to make it again: the SQL PREPARE's text, or the Parse message. */
export type PreparedEntry =
  | { readonly kind: 'sql'; readonly text: string }
  | { readonly kind: 'parse'; readonly name: string; readonly query: string; readonly paramTypes: readonly number[]; readonly effect: Effect };

export class SessionState {
  private readonly sets = new Map<string, string>();
  private readonly channels = new Set<string>();
  readonly prepared = new Map<string, PreparedEntry>();
  private readonly holdCursors = new Set<string>();
  private ops: TransactionalOp[] = [];
  private marks: { readonly name: string; readonly at: number }[] = [];
  private temp = false;
  private advisory = false;
  /** The first reason the state stopped being known; once set, never cleared. */
  private lost: string | undefined;

  get lostReason(): string | undefined {
    return this.lost;
  }

  /** Stops following: the state can no longer be rebuilt, whatever comes next. */
  lose(reason: string): void {
    if (this.lost !== undefined) return;
    this.lost = reason;
    this.forget();
  }

  markTemp(): void {
    this.temp = true;
  }
  markAdvisory(): void {
    this.advisory = true;
  }
  discardTemp(): void {
    this.temp = false;
  }

  /** A confirmed SET/RESET/LISTEN/UNLISTEN: lasts if its transaction commits. */
  push(op: TransactionalOp): void {
    if (this.lost !== undefined) return;
    this.ops.push(op);
    if (this.ops.length > MAX_OPS) this.lose('too much state to rebuild'); // the text is counted at commit
  }

  commit(): void {
    if (this.ops.length === 0 && this.marks.length === 0) return; // most transactions change nothing here
    for (const op of this.ops) {
      switch (op.k) {
        case 'set':
          this.sets.delete(op.key); // the replay order is the order of the last SET of each name
          this.sets.set(op.key, op.text);
          break;
        case 'reset':
          this.sets.delete(op.key);
          break;
        case 'reset-all':
          for (const key of [...this.sets.keys()]) if (!NO_RESET_ALL.has(key)) this.sets.delete(key);
          break;
        case 'listen':
          this.channels.add(op.channel);
          break;
        case 'unlisten':
          this.channels.delete(op.channel);
          break;
        case 'unlisten-all':
          this.channels.clear();
          break;
      }
    }
    this.ops = [];
    this.marks = [];
    this.checkCaps();
  }

  rollback(): void {
    this.ops = [];
    this.marks = [];
  }

  savepoint(name: string): void {
    this.marks.push({ name, at: this.ops.length });
    if (this.marks.length > MAX_OPS) this.lose('too much state to rebuild');
  }

  /** RELEASE name: false when we hold no such savepoint (we lost count). The newest of a name wins, as in the server. */
  release(name: string): boolean {
    const i = this.findMark(name);
    if (i < 0) return false;
    this.marks.length = i;
    return true;
  }

  /** ROLLBACK TO name: undoes what came after it; the savepoint itself stays. */
  rollbackTo(name: string): boolean {
    const i = this.findMark(name);
    if (i < 0) return false;
    this.ops.length = this.marks[i]!.at;
    this.marks.length = i + 1;
    return true;
  }

  private findMark(name: string): number {
    for (let i = this.marks.length - 1; i >= 0; i--) if (this.marks[i]!.name === name) return i;
    return -1;
  }

  addPrepared(name: string, entry: PreparedEntry): void {
    if (this.lost !== undefined) return;
    this.prepared.set(name, entry);
    this.checkCaps();
  }
  removePrepared(name: string): void {
    this.prepared.delete(name);
  }
  removeAllPrepared(): void {
    this.prepared.clear();
  }

  addHoldCursor(name: string): void {
    if (this.lost !== undefined) return;
    this.holdCursors.add(name);
    if (this.holdCursors.size > MAX_HOLD_CURSORS) this.lose('too much state to rebuild');
  }
  closeCursor(name: string): void {
    this.holdCursors.delete(name);
  }
  closeAllCursors(): void {
    this.holdCursors.clear();
  }

  /** DISCARD ALL: back to a fresh login (it also runs pg_advisory_unlock_all() and drops temp objects). */
  discardAll(): void {
    this.forget();
    this.temp = false;
    this.advisory = false;
  }

  /** Drops every setting, channel, prepared statement and cursor, and what the open transaction did. */
  private forget(): void {
    this.sets.clear();
    this.channels.clear();
    this.prepared.clear();
    this.holdCursors.clear();
    this.ops = [];
    this.marks = [];
  }

  /** Why the committed state cannot be rebuilt, or undefined when it can. */
  obstacle(): string | undefined {
    if (this.lost !== undefined) return this.lost;
    if (this.temp) return 'a temporary table';
    if (this.advisory) return 'a session-level advisory lock';
    if (this.holdCursors.size > 0) return 'a WITH HOLD cursor';
    return undefined;
  }

  /** Whether uncommitted changes are waiting for their transaction's end. */
  get uncommitted(): boolean {
    return this.ops.length > 0 || this.marks.length > 0;
  }

  replay(): ReplayStep[] {
    const steps: ReplayStep[] = [];
    for (const text of this.sets.values()) steps.push({ kind: 'query', sql: text });
    for (const ch of this.channels) steps.push({ kind: 'query', sql: `LISTEN ${quoteIdent(ch)}` });
    for (const p of this.prepared.values()) {
      steps.push(p.kind === 'sql' ? { kind: 'query', sql: p.text } : { kind: 'parse', name: p.name, query: p.query, paramTypes: p.paramTypes });
    }
    return steps;
  }

  private checkCaps(): void {
    if (this.prepared.size > MAX_PREPARED || this.channels.size > MAX_CHANNELS || this.ops.length > MAX_OPS || this.textSize() > MAX_TEXT) {
      this.lose('too much state to rebuild');
    }
  }

  /** Characters of SQL the replay would send (bounded by the caps, so the sum stays cheap). */
  private textSize(): number {
    let n = 0;
    for (const text of this.sets.values()) n += text.length;
    for (const ch of this.channels) n += ch.length + 10;
    for (const p of this.prepared.values()) n += p.kind === 'sql' ? p.text.length : p.query.length + p.name.length;
    return n;
  }
}
