// The session state tracker (src/survive/state-tracker.ts) fed message sequences as a relay sees
// them: what it can replay, when it says a session may move, and why not.
import t from 'tap';
import { StateTracker } from '../../src/survive/state-tracker';
import { MAX_PREPARED, MAX_TEXT } from '../../src/survive/session-state';
import { B, BIND_OK, CC, CLOSE, CLOSE_OK, D, E, EMPTY, ERR, feed, FLUSH, NO_DATA, P, PARSE_OK, PS, Q, ROW, simple, SUSPENDED, SYNC, Z } from '../helpers/protocol-messages';

function steps(tr: StateTracker): string[] {
  return tr.replay().map((s) => (s.kind === 'query' ? s.sql : `parse ${s.name} [${s.paramTypes.join(',')}]: ${s.query}`));
}
const movable = (tr: StateTracker) => tr.movable();
const utf8 = () => new StateTracker({ parameters: new Map([['client_encoding', 'UTF8']]) });

t.test('a fresh session is movable with nothing to replay', async (t) => {
  const tr = new StateTracker();
  feed(tr, Z('I'));
  t.same(movable(tr), { ok: true });
  t.same(steps(tr), []);
});

t.test('SET counts once confirmed; a failed SET does not', async (t) => {
  const tr = new StateTracker();
  feed(tr, Q('SET search_path TO app, public'));
  t.same(movable(tr), { ok: false, reason: 'a statement in flight' });
  feed(tr, CC('SET'), Z('I'));
  simple(tr, 'SET work_mem = nonsense', ['ERROR']);
  t.same(steps(tr), ['SET search_path TO app, public']);
  t.same(movable(tr), { ok: true });
});

t.test('repeated SETs collapse to the last; RESET removes; RESET ALL keeps the role; DEFAULT resets', async (t) => {
  const tr = new StateTracker();
  simple(tr, "SET application_name = 'a'", ['SET']);
  simple(tr, 'SET work_mem = 1000', ['SET']);
  simple(tr, "SET application_name = 'b'", ['SET']);
  t.same(steps(tr), ['SET work_mem = 1000', "SET application_name = 'b'"]);
  simple(tr, 'RESET work_mem', ['RESET']);
  t.same(steps(tr), ["SET application_name = 'b'"]);
  simple(tr, 'SET ROLE reader; SET statement_timeout TO 5000', ['SET', 'SET']);
  simple(tr, 'SET statement_timeout TO DEFAULT', ['SET']);
  t.same(steps(tr), ["SET application_name = 'b'", 'SET ROLE reader']);
  simple(tr, 'RESET ALL', ['RESET']);
  t.same(steps(tr), ['SET ROLE reader']);
  simple(tr, 'DISCARD ALL', ['DISCARD ALL']);
  t.same(steps(tr), []);
});

t.test('transactions: COMMIT keeps, ROLLBACK and a failed block undo, SET LOCAL leaves nothing', async (t) => {
  const tr = new StateTracker();
  simple(tr, 'BEGIN', ['BEGIN'], 'T');
  simple(tr, 'SET a.x = 1', ['SET'], 'T');
  t.same(movable(tr), { ok: false, reason: 'inside a transaction' });
  simple(tr, 'COMMIT', ['COMMIT']);
  t.same(steps(tr), ['SET a.x = 1']);

  simple(tr, 'BEGIN; SET a.y = 2', ['BEGIN', 'SET'], 'T');
  simple(tr, 'ROLLBACK', ['ROLLBACK']);
  t.same(steps(tr), ['SET a.x = 1'], 'rolled back');

  simple(tr, 'BEGIN; SET a.y = 2; SELECT 1/0', ['BEGIN', 'SET', 'ERROR'], 'E');
  t.same(movable(tr), { ok: false, reason: 'inside a failed transaction' });
  simple(tr, 'COMMIT', ['ROLLBACK']);
  t.same(steps(tr), ['SET a.x = 1'], 'COMMIT of a failed transaction rolls back');

  simple(tr, 'BEGIN; SET LOCAL a.z = 3; COMMIT', ['BEGIN', 'SET', 'COMMIT']);
  t.same(steps(tr), ['SET a.x = 1']);
  t.same(movable(tr), { ok: true });
});

t.test('a multi-statement Query is one implicit transaction: an error undoes its earlier SETs', async (t) => {
  const tr = new StateTracker();
  simple(tr, 'SET a.x = 1; SELECT 1/0; SET a.y = 2', ['SET', 'ERROR']);
  t.same(steps(tr), []);
  simple(tr, 'SET a.x = 1; SELECT 1; SET a.y = 2', ['SET', 'SELECT 1', 'SET']);
  t.same(steps(tr), ['SET a.x = 1', 'SET a.y = 2']);
});

t.test('savepoints are followed exactly', async (t) => {
  const tr = new StateTracker();
  simple(tr, 'BEGIN; SET a.one = 1; SAVEPOINT s1; SET a.two = 2; SAVEPOINT s2; SET a.three = 3', ['BEGIN', 'SET', 'SAVEPOINT', 'SET', 'SAVEPOINT', 'SET'], 'T');
  simple(tr, 'ROLLBACK TO SAVEPOINT s1', ['ROLLBACK'], 'T');
  simple(tr, 'SET a.four = 4; SAVEPOINT s3; SET a.five = 5; RELEASE s3', ['SET', 'SAVEPOINT', 'SET', 'RELEASE'], 'T');
  simple(tr, 'SELECT 1/0', ['ERROR'], 'E');
  simple(tr, 'ROLLBACK TO s1', ['ROLLBACK'], 'T');
  simple(tr, 'SET a.six = 6', ['SET'], 'T');
  simple(tr, 'COMMIT', ['COMMIT']);
  t.same(steps(tr), ['SET a.one = 1', 'SET a.six = 6']);
  t.same(movable(tr), { ok: true });
});

t.test('a savepoint pgwarden does not know about loses the state', async (t) => {
  const tr = new StateTracker();
  simple(tr, 'ROLLBACK TO nowhere', ['ROLLBACK'], 'T');
  t.match(movable(tr), { ok: false, reason: /lost track of savepoint/ });
});

t.test('quotes, dollar quotes and comments do not split statements', async (t) => {
  const tr = new StateTracker();
  simple(tr, "SELECT 'a; SET x.y = 1', $q$; LISTEN z;$q$ /* ; DISCARD ALL; */ -- ;RESET ALL\n; SET a.b = 'c;d'", ['SELECT 1', 'SET']);
  t.same(steps(tr), ["SET a.b = 'c;d'"]);
  t.same(movable(tr), { ok: true });
});

t.test('LISTEN and UNLISTEN, quoted for the replay', async (t) => {
  const tr = new StateTracker();
  simple(tr, 'LISTEN jobs; LISTEN "Mixed ""Case"""; LISTEN other', ['LISTEN', 'LISTEN', 'LISTEN']);
  simple(tr, 'UNLISTEN other', ['UNLISTEN']);
  t.same(steps(tr), ['LISTEN "jobs"', 'LISTEN "Mixed ""Case"""']);
  simple(tr, 'BEGIN; UNLISTEN *; ROLLBACK', ['BEGIN', 'UNLISTEN', 'ROLLBACK']);
  t.equal(steps(tr).length, 2, 'a rolled-back UNLISTEN * changes nothing');
  simple(tr, 'UNLISTEN *', ['UNLISTEN']);
  t.same(steps(tr), []);
});

t.test('SQL PREPARE and DEALLOCATE; prepared statements survive a rollback', async (t) => {
  const tr = new StateTracker();
  simple(tr, 'BEGIN; PREPARE q1 (int) AS SELECT $1; ROLLBACK', ['BEGIN', 'PREPARE', 'ROLLBACK']);
  simple(tr, 'PREPARE q2 AS SELECT 2', ['PREPARE']);
  t.same(steps(tr), ['PREPARE q1 (int) AS SELECT $1', 'PREPARE q2 AS SELECT 2']);
  simple(tr, 'DEALLOCATE q1', ['DEALLOCATE']);
  t.same(steps(tr), ['PREPARE q2 AS SELECT 2']);
  simple(tr, 'DEALLOCATE ALL', ['DEALLOCATE ALL']);
  t.same(steps(tr), []);
});

t.test('temporary tables, advisory locks, WITH HOLD cursors make a session unmovable', async (t) => {
  const temp = new StateTracker();
  simple(temp, 'CREATE TEMP TABLE t (a int)', ['CREATE TABLE']);
  t.same(movable(temp), { ok: false, reason: 'a temporary table' });
  simple(temp, 'DISCARD TEMP', ['DISCARD TEMP']);
  t.same(movable(temp), { ok: true });

  const lock = new StateTracker();
  simple(lock, 'SELECT pg_advisory_lock(42)', ['SELECT 1']);
  t.same(movable(lock), { ok: false, reason: 'a session-level advisory lock' });
  simple(lock, 'SELECT pg_advisory_unlock(42)', ['SELECT 1']);
  t.same(movable(lock), { ok: false, reason: 'a session-level advisory lock' }, 'unlocks are not counted');
  simple(lock, 'DISCARD ALL', ['DISCARD ALL']);
  t.same(movable(lock), { ok: true }, 'DISCARD ALL releases every advisory lock');

  const xact = new StateTracker();
  simple(xact, 'BEGIN; SELECT pg_advisory_xact_lock(1); COMMIT', ['BEGIN', 'SELECT 1', 'COMMIT']);
  t.same(movable(xact), { ok: true });

  const hold = new StateTracker();
  simple(hold, 'BEGIN; DECLARE c CURSOR WITH HOLD FOR SELECT 1; COMMIT', ['BEGIN', 'DECLARE CURSOR', 'COMMIT']);
  t.same(movable(hold), { ok: false, reason: 'a WITH HOLD cursor' });
  simple(hold, 'CLOSE c', ['CLOSE CURSOR']);
  t.same(movable(hold), { ok: true });
});

t.test('unknown state is for good', async (t) => {
  for (const [sql, reason] of [
    ["SELECT set_config('search_path', 'x', false)", /set_config/],
    ['DO $$ BEGIN END $$', /DO block/],
    ['SET SESSION AUTHORIZATION bob', /SESSION AUTHORIZATION/],
    ['SET work_mem FROM CURRENT', /FROM CURRENT/],
  ] as const) {
    const tr = new StateTracker();
    simple(tr, sql, ['ERROR']);
    t.match(movable(tr), { ok: false, reason }, `${sql} (even when it failed)`);
    simple(tr, 'DISCARD ALL', ['DISCARD ALL']);
    simple(tr, 'SELECT 1', ['SELECT 1']);
    t.match(movable(tr), { ok: false, reason });
    t.same(steps(tr), []);
  }
});

t.test('a tag that does not fit the statement means we lost our place', async (t) => {
  const tr = new StateTracker();
  simple(tr, 'SELECT 1', ['SET']);
  t.match(movable(tr), { ok: false, reason: /lost track/ });
  const extra = new StateTracker();
  simple(extra, 'SELECT 1', ['SELECT 1', 'SELECT 1']);
  t.match(movable(extra), { ok: false, reason: /lost track/ });
  const wrong = new StateTracker();
  simple(wrong, 'SET a.b = 1', ['LISTEN']);
  t.match(movable(wrong), { ok: false, reason: /lost track/ });
});

t.test('extended protocol: named statements are tracked once ParseComplete confirms them', async (t) => {
  const tr = new StateTracker();
  feed(tr, P('s1', 'SELECT $1::int', [23]), P('s2', 'SELECT 2'), P('', 'SELECT 3'), SYNC);
  t.same(movable(tr), { ok: false, reason: 'a statement in flight' });
  feed(tr, PARSE_OK, PARSE_OK, PARSE_OK, Z('I'));
  t.same(steps(tr), ['parse s1 [23]: SELECT $1::int', 'parse s2 []: SELECT 2'], 'the unnamed statement is not state');
  feed(tr, CLOSE('S', 's1'), SYNC, CLOSE_OK, Z('I'));
  t.same(steps(tr), ['parse s2 []: SELECT 2']);
  t.same(movable(tr), { ok: true });
});

t.test('extended protocol: an error skips the rest up to Sync; those Parses were not made', async (t) => {
  const tr = new StateTracker();
  feed(tr, P('a', 'SELECT 1'), P('b', 'SELEC oops'), P('c', 'SELECT 3'), B('', 'a'), E(), SYNC);
  feed(tr, PARSE_OK, ERR(), Z('I'));
  t.same(steps(tr), ['parse a []: SELECT 1']);
  feed(tr, P('c', 'SELECT 3'), D('S', 'c'), SYNC, PARSE_OK, NO_DATA, Z('I'));
  t.same(steps(tr), ['parse a []: SELECT 1', 'parse c []: SELECT 3']);
  // A failed Close leaves the statement in place.
  feed(tr, CLOSE('S', 'a'), SYNC, ERR(), Z('I'));
  t.equal(steps(tr).length, 2);
  t.same(movable(tr), { ok: true });
});

t.test('extended protocol: SET, LISTEN and transactions run through Bind/Execute', async (t) => {
  const tr = new StateTracker();
  feed(tr, P('', 'SET search_path TO app'), B('', ''), E(), SYNC, PARSE_OK, BIND_OK, CC('SET'), Z('I'));
  t.same(steps(tr), ['SET search_path TO app']);
  feed(tr, P('begin', 'BEGIN'), P('set', "SET application_name = 'x'"), P('rb', 'ROLLBACK'), SYNC, PARSE_OK, PARSE_OK, PARSE_OK, Z('I'));
  feed(tr, B('', 'begin'), E(), B('', 'set'), E(), SYNC, BIND_OK, CC('BEGIN'), BIND_OK, CC('SET'), Z('T'));
  t.same(movable(tr), { ok: false, reason: 'inside a transaction' });
  feed(tr, B('', 'rb'), E(), SYNC, BIND_OK, CC('ROLLBACK'), Z('I'));
  t.equal(steps(tr).filter((s) => s.startsWith('SET')).length, 1, 'the SET inside the rolled-back transaction is gone');
  feed(tr, B('p', 'set'), E('p'), SYNC, BIND_OK, CC('SET'), Z('I'));
  t.ok(steps(tr).includes("SET application_name = 'x'"), 'a named portal of a named statement');
  // An implicit transaction (up to Sync) that fails undoes its SETs.
  feed(tr, P('', 'LISTEN ch'), B('', ''), E(), P('', 'SELECT 1/0'), B('', ''), E(), SYNC, PARSE_OK, BIND_OK, CC('LISTEN'), PARSE_OK, BIND_OK, ERR(), Z('I'));
  t.notOk(steps(tr).includes('LISTEN "ch"'));
  t.same(movable(tr), { ok: true });
});

t.test('extended protocol: rows, suspended portals, empty queries, Flush', async (t) => {
  const tr = new StateTracker();
  feed(tr, P('', 'SELECT generate_series(1, 3)'), B('', ''), E('', 2), FLUSH, PARSE_OK, BIND_OK, ROW, ROW, SUSPENDED);
  feed(tr, E('', 2), SYNC, ROW, CC('SELECT 1'), Z('I'));
  feed(tr, P('', ''), B('', ''), E(), SYNC, PARSE_OK, BIND_OK, EMPTY, Z('I'));
  feed(tr, Q(''), EMPTY, Z('I'));
  t.same(movable(tr), { ok: true });
});

t.test('extended protocol: a statement with a temp table or advisory lock counts when executed', async (t) => {
  const tr = new StateTracker();
  feed(tr, P('lock', 'SELECT pg_advisory_lock($1)'), SYNC, PARSE_OK, Z('I'));
  t.same(movable(tr), { ok: true }, 'preparing it takes no lock');
  feed(tr, B('', 'lock'), E(), SYNC);
  t.same(movable(tr), { ok: false, reason: 'a session-level advisory lock' });
});

t.test('a Parse of several statements that succeeds means we misread it', async (t) => {
  const tr = new StateTracker();
  feed(tr, P('x', 'SELECT 1; SELECT 2'), SYNC, PARSE_OK, Z('I'));
  t.match(movable(tr), { ok: false, reason: /several statements/ });
});

t.test('ParameterStatus: the latest value of each', async (t) => {
  const tr = new StateTracker({ parameters: new Map([['server_version', '15.4']]) });
  feed(tr, PS('application_name', 'a'), PS('application_name', 'b'), PS('TimeZone', 'UTC'));
  t.same([...tr.parameters()], [['server_version', '15.4'], ['application_name', 'b'], ['TimeZone', 'UTC']]);
});

t.test('encodings: client-only encodings are not followed; non-ASCII needs UTF8', async (t) => {
  const sjis = new StateTracker();
  feed(sjis, PS('client_encoding', 'SJIS'));
  t.match(movable(sjis), { ok: false, reason: /client_encoding SJIS/ });
  const latin = new StateTracker({ parameters: new Map([['client_encoding', 'LATIN1']]) });
  simple(latin, "SET application_name = 'x'", ['SET']);
  t.same(movable(latin), { ok: true });
  simple(latin, "SET application_name = 'é'", ['SET']);
  t.match(movable(latin), { ok: false, reason: /non-ASCII/ });
  const u = utf8();
  simple(u, "SET application_name = 'é'", ['SET']);
  t.same(steps(u), ["SET application_name = 'é'"]);
  t.same(movable(u), { ok: true });
  simple(u, 'LISTEN Café; PREPARE Zäh AS SELECT 1', ['LISTEN', 'PREPARE']);
  t.same(steps(u).slice(1), ['LISTEN "café"', 'PREPARE Zäh AS SELECT 1'], 'unquoted names: ASCII folded, UTF-8 kept (downcase_identifier)');
  const off = new StateTracker({ parameters: new Map([['standard_conforming_strings', 'off']]) });
  simple(off, "SELECT 'a\\'; SET a.b = 1'", ['SELECT 1']);
  t.same(movable(off), { ok: true }, 'with backslash escapes the SET is inside the string');
});

t.test('caps: too many prepared statements or too much text', async (t) => {
  const tr = new StateTracker();
  for (let i = 0; i <= MAX_PREPARED; i++) feed(tr, P(`s${i}`, 'SELECT 1'), SYNC, PARSE_OK, Z('I'));
  t.same(movable(tr), { ok: false, reason: 'too much state to rebuild' });
  t.same(steps(tr), [], 'and the memory is let go');
  const text = new StateTracker();
  simple(text, `SET a.b = '${'x'.repeat(MAX_TEXT)}'`, ['SET']);
  t.same(movable(text), { ok: false, reason: 'too much state to rebuild' });
});

t.test('COPY and function calls leave the state alone', async (t) => {
  const tr = new StateTracker();
  feed(tr, Q('COPY t FROM STDIN'), { from: 'server', type: 0x47, body: Buffer.alloc(3) }, { from: 'client', type: 0x64, body: Buffer.from('1\n') }, { from: 'client', type: 0x63, body: Buffer.alloc(0) }, CC('COPY 1'), Z('I'));
  feed(tr, { from: 'client', type: 0x46, body: Buffer.alloc(12) }, { from: 'server', type: 0x56, body: Buffer.alloc(4) }, Z('I'));
  t.same(movable(tr), { ok: true });
});

t.test('a Query whose statements are not all answered was split differently: lost track', async (t) => {
  const tr = new StateTracker();
  simple(tr, 'SELECT 1; SELECT 2', ['SELECT 1']);
  t.match(movable(tr), { ok: false, reason: /split differently/ });
});

t.test('after an error the server discards a pipelined Query or FunctionCall up to Sync', async (t) => {
  const tr = new StateTracker();
  const fn = { from: 'client' as const, type: 0x46, body: Buffer.alloc(12) };
  feed(tr, P('', 'SELEC'), B('', ''), E(), Q('SET a.b = 1'), fn, SYNC, ERR(), Z('I'));
  t.same(movable(tr), { ok: true });
  t.same(steps(tr), []);
});
