// Follows one session's state from its protocol messages (issue 19, "sessions that survive a
// failover"): what the client asked for (Query, Parse/Bind/Execute/Close, Sync, FunctionCall) is
// queued in order, and the server's answers — which come strictly in that order (protocol docs,
// "Message Flow": Simple Query, Extended Query, Pipelining) — confirm or fail each item. A SET,
// LISTEN or PREPARE counts only once the server's CommandComplete for it arrives; its tag must be
// the one the statement answers with, or we lost our place and the session is unmovable for good.
//
// Transactions: SET/RESET/LISTEN/UNLISTEN wait in SessionState until their transaction commits. A
// transaction ends with a COMMIT/ROLLBACK tag, or — for the implicit transaction of a simple Query
// or of the messages up to a Sync — at ReadyForQuery 'I': committed unless an ErrorResponse came
// in it. Savepoints are followed exactly.
//
// When a session is unmovable (movable() says why, for the log line):
// - for good: a statement whose effects pgwarden cannot reproduce — set_config() anywhere in a
//   statement, DO, LOAD, SET SESSION AUTHORIZATION / RESET SESSION AUTHORIZATION, SET … FROM
//   CURRENT, SET SEED, SET NAMES / client_encoding, SET SESSION CHARACTERISTICS, PREPARE
//   TRANSACTION, any SET/RESET/LISTEN/DEALLOCATE/DISCARD/CLOSE/DECLARE form it does not parse;
//   a CommandComplete tag that does not fit the statement, an answer nothing asked for, a Query
//   split differently from the server; more state than the caps (session-state.ts); a client-only
//   encoding (SJIS, BIG5, GBK, UHC, GB18030, JOHAB); non-ASCII text to replay without UTF8.
//   Unknown statements count when sent, even if they then fail. DISCARD ALL does not undo these.
// - until undone: a temporary object (CREATE … TEMP/TEMPORARY/pg_temp without ON COMMIT DROP,
//   SELECT … INTO TEMP; undone by DISCARD TEMP/ALL), a session advisory lock (any call of
//   pg_advisory_lock*/pg_try_advisory_lock*, not the _xact_ ones; unlocks are not counted;
//   undone by DISCARD ALL), a cursor WITH HOLD (undone by CLOSE name/ALL, DISCARD ALL).
// - for now: inside a transaction (last ReadyForQuery not 'I'), a message in flight.
// Function calls in ordinary statements (SELECT f(), CALL p()) are assumed to leave session state
// alone: pgwarden cannot see into them, and refusing them would make the feature useless. Nor are
// sequence state (currval/lastval) and the random() seed carried over.
//
// Cheap: only Query and Parse bodies are lexed; other messages read a name or two, or nothing.
// Once the state is lost (unknown statement, too much state, lost place) only ParameterStatus and
// ReadyForQuery are looked at.
import type { Movability, ReplayStep, SessionStateTracker } from './contracts';
import { ReportedParameters } from './reported-parameters';
import { SessionState } from './session-state';
import { splitStatements } from './sql-lexer';
import { classify, expectedTags, NONE, STATE_TAGS, type Effect } from './sql-statement-kind';

/** Frontend message types ("Message Formats"). */
const F_QUERY = 0x51; // Q
const F_PARSE = 0x50; // P
const F_BIND = 0x42; // B
const F_EXECUTE = 0x45; // E
const F_CLOSE = 0x43; // C
const F_SYNC = 0x53; // S
const F_FUNCTION_CALL = 0x46; // F
/** Backend message types. */
const B_COMMAND_COMPLETE = 0x43; // C
const B_EMPTY_QUERY = 0x49; // I
const B_PORTAL_SUSPENDED = 0x73; // s
const B_PARSE_COMPLETE = 0x31; // 1
const B_BIND_COMPLETE = 0x32; // 2
const B_CLOSE_COMPLETE = 0x33; // 3
const B_ERROR = 0x45; // E
const B_READY = 0x5a; // Z
const B_PARAMETER_STATUS = 0x53; // S

/** Client messages in flight, oldest first. */
type Pending =
  | { t: 'query'; readonly effects: readonly Effect[]; next: number; failed: boolean }
  | { t: 'parse'; readonly name: string; readonly query: string; readonly paramTypes: readonly number[]; readonly effect: Effect; readonly multi: boolean }
  | { t: 'bind' }
  | { t: 'execute'; readonly effect: Effect }
  | { t: 'close'; readonly name: string }
  /** Sync, or a FunctionCall (`call`): answered by ReadyForQuery. */
  | { t: 'sync'; readonly call: boolean };

/** More pipelined messages than this without an answer: we stop following rather than grow. */
export const MAX_IN_FLIGHT = 100_000;

export interface StateTrackerOptions {
  /** ParameterStatus values from the login (LoginResult.parameters), when the tracker starts after it. */
  readonly parameters?: ReadonlyMap<string, string>;
}

export class StateTracker implements SessionStateTracker {
  private readonly state = new SessionState();
  private readonly params = new ReportedParameters();
  private readonly queue: Pending[] = [];
  /** Index of the queue's head (shifting arrays is O(n); compacted when drained). */
  private head = 0;
  /** Effects of named statements as the client sees them (sent Parse/Close), non-NONE only. */
  private readonly statements = new Map<string, Effect>();
  private unnamed: Effect = NONE;
  /** Effects of bound portals, non-NONE only. */
  private readonly portals = new Map<string, Effect>();
  private status = 0x49; // 'I'
  private errorInTransaction = false;

  constructor(opts: StateTrackerOptions = {}) {
    for (const [k, v] of opts.parameters ?? []) {
      const lost = this.params.set(k, v);
      if (lost !== undefined) this.state.lose(lost);
    }
  }

  fromClient(type: number, body: Buffer): void {
    if (this.state.lostReason !== undefined) return;
    switch (type) {
      case F_QUERY:
        return this.onQuery(body);
      case F_PARSE:
        return this.onParse(body);
      case F_BIND:
        return this.onBind(body);
      case F_EXECUTE:
        return this.onExecute(body);
      case F_CLOSE:
        return this.onClose(body);
      case F_SYNC:
        return this.enqueue({ t: 'sync', call: false });
      case F_FUNCTION_CALL:
        return this.enqueue({ t: 'sync', call: true });
      default:
        return; // Describe, Flush, CopyData/Done/Fail, Terminate: no session state
    }
  }

  fromServer(type: number, body: Buffer): void {
    switch (type) {
      case B_PARAMETER_STATUS: {
        const lost = this.params.onParameterStatus(body);
        if (lost !== undefined) this.state.lose(lost);
        return;
      }
      case B_READY:
        return this.onReady(body);
    }
    if (this.state.lostReason !== undefined) return;
    switch (type) {
      case B_COMMAND_COMPLETE:
        return this.onCommandComplete(body);
      case B_EMPTY_QUERY:
      case B_PORTAL_SUSPENDED:
        return this.onExecuteEnd(type);
      case B_PARSE_COMPLETE: {
        const p = this.expect('parse', 'ParseComplete');
        if (p === undefined) return;
        if (p.multi) return this.state.lose('a Parse of several statements that the server accepted');
        if (p.name !== '') this.state.addPrepared(p.name, { kind: 'parse', name: p.name, query: p.query, paramTypes: p.paramTypes, effect: p.effect });
        return;
      }
      case B_BIND_COMPLETE:
        this.expect('bind', 'BindComplete');
        return;
      case B_CLOSE_COMPLETE: {
        const c = this.expect('close', 'CloseComplete');
        if (c !== undefined) this.state.removePrepared(c.name);
        return;
      }
      case B_ERROR:
        return this.onError();
    }
  }

  movable(): Movability {
    const obstacle = this.state.obstacle();
    if (obstacle !== undefined) return { ok: false, reason: obstacle };
    if (this.status !== 0x49) return { ok: false, reason: this.status === 0x45 ? 'inside a failed transaction' : 'inside a transaction' };
    if (this.head < this.queue.length) return { ok: false, reason: 'a statement in flight' };
    if (this.state.uncommitted) return { ok: false, reason: 'inside a transaction' };
    return { ok: true };
  }

  replay(): readonly ReplayStep[] {
    return this.state.replay();
  }

  parameters(): ReadonlyMap<string, string> {
    return this.params.values;
  }

  // ---- client side -------------------------------------------------------------------------

  private onQuery(body: Buffer): void {
    // A simple Query destroys the unnamed statement and portal ("Simple Query").
    this.unnamed = NONE;
    this.portals.delete('');
    const end = body.length > 0 && body[body.length - 1] === 0 ? body.length - 1 : body.length;
    const effects = this.effectsOf(body, end);
    if (effects === undefined) return;
    for (const e of effects) this.applyAtSend(e);
    this.enqueue({ t: 'query', effects, next: 0, failed: false });
  }

  /** Parse: String name, String query, Int16 count, Int32 type OIDs ("Message Formats"). */
  private onParse(body: Buffer): void {
    const n1 = body.indexOf(0);
    const n2 = n1 < 0 ? -1 : body.indexOf(0, n1 + 1);
    if (n2 < 0 || n2 + 3 > body.length) return this.state.lose('a Parse message pgwarden could not read');
    const count = body.readInt16BE(n2 + 1);
    if (count < 0 || n2 + 3 + 4 * count > body.length) return this.state.lose('a Parse message pgwarden could not read');
    const paramTypes: number[] = [];
    for (let i = 0; i < count; i++) paramTypes.push(body.readUInt32BE(n2 + 3 + 4 * i));
    const name = body.toString('utf8', 0, n1);
    const query = body.toString('utf8', n1 + 1, n2);
    // The query runs at Execute; the server refuses several statements in one Parse.
    const statements = splitStatements(body.subarray(n1 + 1, n2), n2 - n1 - 1, this.params.standardStrings());
    const st = statements[0];
    const effect = statements.length === 1 ? classify(st!, () => body.toString('utf8', n1 + 1 + st!.start, n1 + 1 + st!.end)) : NONE;
    const unsafe = name !== '' || storesText(effect) ? this.params.unsafeText(body, 0, n2) : undefined;
    if (unsafe !== undefined) return this.state.lose(unsafe);
    if (name === '') this.unnamed = effect;
    else if (!this.statements.has(name) && effect !== NONE) this.statements.set(name, effect); // an existing name: the Parse fails
    this.enqueue({ t: 'parse', name, query, paramTypes, effect, multi: statements.length > 1 });
  }

  /** Bind: String portal, String statement, … — the portal runs that statement's query. */
  private onBind(body: Buffer): void {
    const n1 = body.indexOf(0);
    const n2 = n1 < 0 ? -1 : body.indexOf(0, n1 + 1);
    if (n2 < 0) return this.state.lose('a Bind message pgwarden could not read');
    const portal = body.toString('utf8', 0, n1);
    const statement = body.toString('utf8', n1 + 1, n2);
    const effect = statement === '' ? this.unnamed : (this.statements.get(statement) ?? NONE);
    if (effect === NONE) this.portals.delete(portal);
    else {
      this.portals.set(portal, effect);
      if (this.portals.size > MAX_IN_FLIGHT) return this.state.lose('too much state to rebuild');
    }
    this.enqueue({ t: 'bind' });
  }

  /** Execute: String portal, Int32 row limit. */
  private onExecute(body: Buffer): void {
    const n = body.indexOf(0);
    if (n < 0) return this.state.lose('an Execute message pgwarden could not read');
    const effect = this.portals.get(body.toString('utf8', 0, n)) ?? NONE;
    this.applyAtSend(effect);
    this.enqueue({ t: 'execute', effect });
  }

  /** Close: Byte1 'S' (statement) or 'P' (portal), String name. */
  private onClose(body: Buffer): void {
    const n = body.indexOf(0, 1);
    if (body.length < 2 || n < 0) return this.state.lose('a Close message pgwarden could not read');
    const name = body.toString('utf8', 1, n);
    if (body[0] === 0x50) {
      this.portals.delete(name);
      this.enqueue({ t: 'close', name: '' }); // CloseComplete answers it; no statement goes
      return;
    }
    this.statements.delete(name);
    this.enqueue({ t: 'close', name });
  }

  /** The effects of each statement of a SQL text, or undefined when the state was lost on the way. */
  private effectsOf(body: Buffer, end: number): Effect[] | undefined {
    const statements = splitStatements(body, end, this.params.standardStrings());
    const effects: Effect[] = [];
    for (const st of statements) {
      const e = classify(st, () => body.toString('utf8', st.start, st.end));
      const unsafe = storesText(e) ? this.params.unsafeText(body, st.start, st.end) : undefined;
      if (unsafe !== undefined) {
        this.state.lose(unsafe);
        return undefined;
      }
      effects.push(e);
    }
    return effects;
  }

  /** Statements that make the session unmovable do so when sent, whether or not they succeed. */
  private applyAtSend(e: Effect): void {
    if (e.k !== 'sticky') return;
    if (e.why === 'temp') this.state.markTemp();
    else if (e.why === 'advisory') this.state.markAdvisory();
    else this.state.lose(e.reason);
  }

  private enqueue(p: Pending): void {
    if (this.queue.length - this.head >= MAX_IN_FLIGHT) return this.state.lose('too many pipelined messages to follow');
    this.queue.push(p);
  }

  // ---- server side -------------------------------------------------------------------------

  private peek(): Pending | undefined {
    return this.queue[this.head];
  }

  private shift(): void {
    this.head++;
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    }
  }

  /** The head of the queue if it is of kind `t` (and takes it off), else loses the state. */
  private expect<T extends Pending['t']>(t: T, what: string): Extract<Pending, { t: T }> | undefined {
    const p = this.peek();
    if (p === undefined || p.t !== t) {
      this.state.lose(`pgwarden lost track of the protocol (unexpected ${what})`);
      return undefined;
    }
    this.shift();
    return p as Extract<Pending, { t: T }>;
  }

  private onCommandComplete(body: Buffer): void {
    const end = body.indexOf(0);
    const tag = body.toString('latin1', 0, end < 0 ? body.length : end);
    const p = this.peek();
    if (p?.t === 'query' && !p.failed && p.next < p.effects.length) return this.confirm(p.effects[p.next++]!, tag);
    if (p?.t === 'execute') {
      this.shift();
      return this.confirm(p.effect, tag);
    }
    this.state.lose(`pgwarden lost track of the protocol (unexpected CommandComplete ${tag})`);
  }

  private onExecuteEnd(type: number): void {
    const p = this.peek();
    if (p?.t === 'execute') return this.shift();
    if (p?.t === 'query' && type === B_EMPTY_QUERY && p.effects.length === 0) return;
    this.state.lose('pgwarden lost track of the protocol (unexpected end of an Execute)');
  }

  /** An error fails the head item; the server then skips every extended message up to Sync. */
  private onError(): void {
    this.errorInTransaction = true;
    const p = this.peek();
    if (p === undefined || p.t === 'sync') return;
    if (p.t === 'query') {
      p.failed = true;
      return;
    }
    // Everything up to the next Sync is discarded unanswered — a Query or FunctionCall too.
    for (let q = this.peek(); q !== undefined && !(q.t === 'sync' && !q.call); q = this.peek()) {
      if (q.t === 'parse' || q.t === 'close') this.restoreStatement(q.name); // it did not happen
      this.shift();
    }
  }

  /** After a Parse or Close of `name` failed or was skipped: what the server really holds. */
  private restoreStatement(name: string): void {
    if (name === '') return;
    const held = this.state.prepared.get(name);
    const effect = held?.kind === 'parse' ? held.effect : NONE;
    if (effect === NONE) this.statements.delete(name);
    else this.statements.set(name, effect);
  }

  private onReady(body: Buffer): void {
    this.status = body[0] ?? 0;
    if (this.state.lostReason !== undefined) return;
    const p = this.peek();
    if (p !== undefined) {
      if (p.t !== 'sync' && p.t !== 'query') return this.state.lose('pgwarden lost track of the protocol (unexpected ReadyForQuery)');
      // Every statement of a Query answers CommandComplete or, once, ErrorResponse: one left
      // unanswered means the server split the text differently from us.
      if (p.t === 'query' && !p.failed && p.next < p.effects.length) return this.state.lose('pgwarden lost track of the protocol (a Query split differently)');
      this.shift();
    }
    if (this.status === 0x49) {
      // The implicit transaction (or the last explicit one, if no tag ended it) is over.
      if (this.errorInTransaction) this.state.rollback();
      else this.state.commit();
      this.errorInTransaction = false;
      this.portals.clear(); // portals do not outlive their transaction
    }
  }

  /** The server completed a statement whose effect is `e`, with CommandComplete `tag`. */
  private confirm(e: Effect, tag: string): void {
    const tags = expectedTags(e);
    if (tags !== undefined ? !tags.includes(tag) : e.k === 'none' && STATE_TAGS.has(tag)) {
      return this.state.lose(`pgwarden lost track of the protocol (CommandComplete ${tag} for a statement it did not expect it from)`);
    }
    const s = this.state;
    switch (e.k) {
      case 'set':
      case 'reset':
      case 'reset-all':
      case 'listen':
      case 'unlisten':
      case 'unlisten-all':
        return s.push(e);
      case 'commit':
        if (tag === 'COMMIT') s.commit();
        else s.rollback();
        this.errorInTransaction = false;
        return;
      case 'rollback':
        s.rollback();
        this.errorInTransaction = false;
        return;
      case 'savepoint':
        return s.savepoint(e.name);
      case 'release':
        if (!s.release(e.name)) s.lose(`pgwarden lost track of savepoint ${e.name}`);
        return;
      case 'rollback-to':
        if (!s.rollbackTo(e.name)) s.lose(`pgwarden lost track of savepoint ${e.name}`);
        return;
      case 'prepare':
        return s.addPrepared(e.name, { kind: 'sql', text: e.text });
      case 'deallocate':
        s.removePrepared(e.name);
        this.statements.delete(e.name);
        return;
      case 'deallocate-all':
        s.removeAllPrepared();
        this.statements.clear();
        return;
      case 'discard-all':
        s.discardAll();
        this.statements.clear();
        return;
      case 'discard-temp':
        return s.discardTemp();
      case 'declare-hold':
        return s.addHoldCursor(e.name);
      case 'close':
        return s.closeCursor(e.name);
      case 'close-all':
        return s.closeAllCursors();
      case 'begin':
      case 'none':
      case 'sticky':
        return;
    }
  }
}

/** Effects whose text (or name) the replay sends back to a server. */
function storesText(e: Effect): boolean {
  return e.k === 'set' || e.k === 'prepare' || e.k === 'listen' || e.k === 'unlisten';
}
