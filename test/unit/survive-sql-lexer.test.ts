// The SQL splitter and statement classifier of the session state tracker (src/survive/): how a
// Query's text divides into statements, and what each does to session state.
import t from 'tap';
import { splitStatements, quoteIdent } from '../../src/survive/sql-lexer';
import { classify, type Effect } from '../../src/survive/sql-statement-kind';

function texts(sql: string, standard = true): string[] {
  const buf = Buffer.from(sql, 'utf8');
  return splitStatements(buf, buf.length, standard).map((s) => buf.toString('utf8', s.start, s.end));
}

function kinds(sql: string): Effect[] {
  const buf = Buffer.from(sql, 'utf8');
  return splitStatements(buf).map((s) => classify(s, buf.toString('utf8', s.start, s.end)));
}
const kind = (sql: string): Effect => {
  const k = kinds(sql);
  if (k.length !== 1) throw new Error(`${sql}: ${k.length} statements`);
  return k[0]!;
};

t.test('splits at top-level semicolons only', async (t) => {
  t.same(texts('SET a = 1; SELECT 2'), ['SET a = 1', 'SELECT 2']);
  t.same(texts(';;  ; SELECT 1;;'), ['SELECT 1'], 'empty statements are dropped, as the server drops them');
  t.same(texts(''), []);
  t.same(texts('-- only a comment; still a comment\n/* and ; this */'), []);
  t.same(texts("SELECT 'a;b'; SELECT 'it''s;'"), ["SELECT 'a;b'", "SELECT 'it''s;'"]);
  t.same(texts("SELECT E'a\\';b'; SELECT 1"), ["SELECT E'a\\';b'", 'SELECT 1'], "E'…' backslash escapes a quote");
  t.same(texts("SELECT 'a\\'; SELECT 1"), ["SELECT 'a\\'", 'SELECT 1'], 'standard strings: a backslash is a plain character');
  t.same(texts("SELECT 'a\\'; SELECT 1'", false), ["SELECT 'a\\'; SELECT 1'"], 'standard_conforming_strings off: backslash escapes');
  t.same(texts('SELECT "a;""b"; SELECT 1'), ['SELECT "a;""b"', 'SELECT 1']);
  t.same(texts('SELECT $$a;b$$; SELECT $x$ $$ ; $x$; SELECT 1'), ['SELECT $$a;b$$', 'SELECT $x$ $$ ; $x$', 'SELECT 1']);
  t.same(texts('SELECT $1; SELECT a$b; SELECT 1'), ['SELECT $1', 'SELECT a$b', 'SELECT 1'], '$1 and a$b are not dollar quotes');
  t.same(texts('SELECT 1 -- c; x\n; SELECT 2'), ['SELECT 1', 'SELECT 2'], 'a line comment runs to the newline');
  t.same(texts('SELECT /* a /* nested; */ still; */ 1; SELECT 2'), ['SELECT /* a /* nested; */ still; */ 1', 'SELECT 2']);
  t.same(texts("SELECT 'unterminated; SET a = 1"), ["SELECT 'unterminated; SET a = 1"], 'an unterminated string runs to the end');
  t.same(
    texts('CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END; SET a = 1'),
    ['CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END', 'SET a = 1'],
    'a SQL-standard function body keeps its semicolons (psql rule)',
  );
  t.same(texts('SELECT 1 FROM t WHERE x = 1; BEGIN; END'), ['SELECT 1 FROM t WHERE x = 1', 'BEGIN', 'END']);
  t.equal(quoteIdent('My "chan"'), '"My ""chan"""');
});

t.test('SET forms', async (t) => {
  t.same(kind('SET search_path TO a, "B", public'), { k: 'set', key: 'search_path', text: 'SET search_path TO a, "B", public' });
  t.same(kind("set SESSION Application_Name = 'x'"), { k: 'set', key: 'application_name', text: "set SESSION Application_Name = 'x'" });
  t.same(kind("SET \"TimeZone\" = 'UTC'").k, 'set');
  t.equal((kind("SET TIME ZONE 'Europe/Paris'") as { key: string }).key, 'timezone');
  t.equal((kind("SET TIME ZONE INTERVAL '+02:00' HOUR TO MINUTE") as { key: string }).key, 'timezone');
  t.equal((kind("SET SCHEMA 'app'") as { key: string }).key, 'search_path');
  t.equal((kind('SET statement_timeout = -1') as { key: string }).key, 'statement_timeout');
  t.equal((kind("SET myapp.tenant = '42'") as { key: string }).key, 'myapp.tenant');
  t.equal((kind('SET sort_mem = 1000') as { key: string }).key, 'work_mem', 'old names map to today’s');
  t.same(kind('SET ROLE app_reader'), { k: 'set', key: 'role', text: 'SET ROLE app_reader' });
  t.same(kind("SET role TO 'app_reader'").k, 'set');
  t.same(kind('SET work_mem TO DEFAULT'), { k: 'reset', key: 'work_mem' });
  t.same(kind('SET LOCAL work_mem = 1000'), { k: 'none', tags: ['SET'] });
  t.same(kind('SET TRANSACTION ISOLATION LEVEL SERIALIZABLE').k, 'none');
  t.same(kind('SET transaction_isolation = serializable').k, 'none');
  t.same(kind('SET CONSTRAINTS ALL DEFERRED').k, 'none');
  for (const sql of [
    'SET SESSION AUTHORIZATION bob',
    'SET work_mem FROM CURRENT',
    "SET NAMES 'LATIN1'",
    "SET client_encoding = 'LATIN1'",
    'SET SEED TO 0.5',
    'SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY',
    'SET work_mem',
    'SET work_mem = (1)',
    'SET 42 = 1',
    'RESET SESSION AUTHORIZATION',
    'RESET a b',
    "SELECT set_config('search_path', 'x', false)",
    "SELECT pg_catalog.set_config('a.b', 'x', true)",
    "SELECT \"set_config\"('a.b', 'x', false)",
    'DO $$ BEGIN PERFORM 1; END $$',
    "LOAD 'auto_explain'",
    'PREPARE TRANSACTION \'x\'',
    'DISCARD EVERYTHING',
    'LISTEN a.b',
  ]) {
    const e = kind(sql);
    t.equal(e.k === 'sticky' && e.why, 'unknown', sql);
  }
});

t.test('RESET, LISTEN, PREPARE, DEALLOCATE, DISCARD, cursors, transactions', async (t) => {
  t.same(kind('RESET search_path'), { k: 'reset', key: 'search_path' });
  t.same(kind('RESET TIME ZONE'), { k: 'reset', key: 'timezone' });
  t.same(kind('RESET ALL'), { k: 'reset-all' });
  t.same(kind('RESET ROLE'), { k: 'reset', key: 'role' });
  t.same(kind('LISTEN Jobs'), { k: 'listen', channel: 'jobs' });
  t.same(kind('LISTEN "Jobs"'), { k: 'listen', channel: 'Jobs' });
  t.same(kind('UNLISTEN jobs'), { k: 'unlisten', channel: 'jobs' });
  t.same(kind('UNLISTEN *'), { k: 'unlisten-all' });
  t.same(kind('PREPARE q1 (int) AS SELECT $1'), { k: 'prepare', name: 'q1', text: 'PREPARE q1 (int) AS SELECT $1' });
  t.same(kind('DEALLOCATE PREPARE Q1'), { k: 'deallocate', name: 'q1' });
  t.same(kind('DEALLOCATE ALL'), { k: 'deallocate-all' });
  t.same(kind('DISCARD ALL'), { k: 'discard-all' });
  t.same(kind('DISCARD TEMP'), { k: 'discard-temp' });
  t.same(kind('DISCARD PLANS').k, 'none');
  t.same(kind('DECLARE c CURSOR WITH HOLD FOR SELECT 1'), { k: 'declare-hold', name: 'c' });
  t.same(kind('DECLARE c NO SCROLL CURSOR WITHOUT HOLD FOR SELECT 1').k, 'none');
  t.same(kind('DECLARE c CURSOR FOR SELECT 1 WITH HOLD').k, 'none', 'WITH HOLD after FOR is part of the query');
  t.same(kind('CLOSE c'), { k: 'close', name: 'c' });
  t.same(kind('CLOSE ALL'), { k: 'close-all' });
  t.same(kind('BEGIN ISOLATION LEVEL SERIALIZABLE'), { k: 'begin' });
  t.same(kind('START TRANSACTION'), { k: 'begin' });
  t.same(kind('END'), { k: 'commit' });
  t.same(kind('COMMIT AND CHAIN'), { k: 'commit' });
  t.same(kind('ABORT'), { k: 'rollback' });
  t.same(kind('ROLLBACK WORK'), { k: 'rollback' });
  t.same(kind('ROLLBACK TO SAVEPOINT s1'), { k: 'rollback-to', name: 's1' });
  t.same(kind('ROLLBACK TRANSACTION TO s1'), { k: 'rollback-to', name: 's1' });
  t.same(kind('SAVEPOINT "S1"'), { k: 'savepoint', name: 'S1' });
  t.same(kind('RELEASE SAVEPOINT s1'), { k: 'release', name: 's1' });
  t.same(kind('RELEASE s1'), { k: 'release', name: 's1' });
  t.same(kind("COMMIT PREPARED 'x'").k, 'none');
});

t.test('temporary objects, advisory locks, and what stays movable', async (t) => {
  const sticky = (sql: string) => {
    const e = kind(sql);
    return e.k === 'sticky' ? e.why : e.k;
  };
  t.equal(sticky('CREATE TEMP TABLE t (a int)'), 'temp');
  t.equal(sticky('CREATE TEMPORARY VIEW v AS SELECT 1'), 'temp');
  t.equal(sticky('create local temporary sequence s'), 'temp');
  t.equal(sticky('CREATE TABLE pg_temp.t (a int)'), 'temp');
  t.equal(sticky('SELECT 1 AS a INTO TEMP t'), 'temp');
  t.equal(sticky('CREATE TEMP TABLE t (a int) ON COMMIT DROP'), 'none', 'gone at the end of its transaction');
  t.equal(sticky('CREATE TEMP TABLE t (a int) ON COMMIT DELETE ROWS'), 'temp');
  t.equal(sticky('SELECT pg_advisory_lock(1)'), 'advisory');
  t.equal(sticky('SELECT pg_try_advisory_lock_shared(1, 2)'), 'advisory');
  t.equal(sticky('SELECT pg_advisory_xact_lock(1)'), 'none', 'transaction-level locks end with their transaction');
  t.equal(sticky('SELECT now(), lower(name) FROM users WHERE id = $1'), 'none', 'ordinary function calls stay movable');
  t.equal(sticky("SELECT 'set_config(' AS s, $$pg_advisory_lock$$"), 'none', 'names inside strings are text');
  t.equal(sticky('CREATE TABLE t (a int)'), 'none');
  t.equal(sticky('CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$ SELECT set_config($$a$$) $$'), 'none');
  t.equal(sticky('INSERT INTO t VALUES (1)'), 'none');
  t.equal(sticky('(SELECT 1)'), 'none');
  t.equal(sticky('EXECUTE q1(1)'), 'none');
  t.equal(sticky('SHOW search_path'), 'none');
});

t.test('a huge statement keeps its first tokens and still sees watched words', async (t) => {
  const sql = `INSERT INTO t VALUES ${Array.from({ length: 2000 }, (_, i) => `(${i})`).join(', ')}, (pg_advisory_lock(1))`;
  const buf = Buffer.from(sql);
  const [st] = splitStatements(buf);
  t.ok(st!.truncated);
  t.ok(st!.tokens.length <= 512);
  t.ok(st!.watched.has('pg_advisory_lock'));
});
