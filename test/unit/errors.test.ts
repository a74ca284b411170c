// The error catalogue (src/errors.ts) is complete, documented and never gives a code two
// meanings: every PGW_ code written anywhere under src/ is declared there exactly once, every
// declared code has a row in README.md's "Error codes" table, and every SQLSTATE pgwarden sends
// is in the README's SQLSTATE table.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import t from 'tap';
import {
  AdminHttpError,
  ConfigError,
  ERROR_CODES,
  PgwardenError,
  RETIRED_CODES,
  RoutingError,
  ServerSqlState,
  SqlState,
  UnknownBackendError,
  codeInfo,
  hasCode,
  type ErrorCode,
} from '../../src/errors';

const ROOT = join(__dirname, '..', '..');
const SRC = join(ROOT, 'src');
const CATALOGUE_FILE = join(SRC, 'errors.ts');
/** PGW_ then upper-case words: `PGW_QUEUE_FULL`, not `PGWARDEN_ADMIN_TOKEN` nor the type `PGW_${string}`. */
const CODE = /\bPGW_[A-Z0-9]+(?:_[A-Z0-9]+)*\b/g;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return /\.(ts|js|mjs|cjs)$/.test(e.name) ? [path] : [];
  });
}

/** Code → the files under src/ that write it. */
function codesInSource(): Map<string, string[]> {
  const uses = new Map<string, string[]>();
  for (const file of sourceFiles(SRC)) {
    for (const code of new Set(readFileSync(file, 'utf8').match(CODE) ?? [])) {
      uses.set(code, [...(uses.get(code) ?? []), relative(ROOT, file)]);
    }
  }
  return uses;
}

/** The codes declared in ERROR_CODES, read from the text: the object itself cannot show a duplicate key. */
function declaredCodes(): string[] {
  const text = readFileSync(CATALOGUE_FILE, 'utf8');
  const start = text.indexOf('export const ERROR_CODES = {');
  const end = text.indexOf('} as const satisfies', start);
  if (start < 0 || end < 0) throw new Error('ERROR_CODES not found in src/errors.ts');
  return [...text.slice(start, end).matchAll(/^\s*(PGW_[A-Z0-9_]+)\s*:/gm)].map((m) => m[1]!);
}

/** The section of README.md under "## Error codes", up to the next "## " heading. */
function readmeSection(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Error codes\n');
  if (start < 0) throw new Error('README.md has no "## Error codes" section');
  const next = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, next < 0 ? undefined : next);
}

/** First cells of the table rows that start with a back-quoted value matching `cell`. */
function tableKeys(section: string, cell: RegExp): string[] {
  return section
    .split('\n')
    .map((line) => new RegExp(`^\\|\\s*\`(${cell.source})\`\\s*\\|`).exec(line)?.[1])
    .filter((k): k is string => k !== undefined);
}

function duplicates(list: readonly string[]): string[] {
  return [...new Set(list.filter((x, i) => list.indexOf(x) !== i))];
}

const catalogue = Object.keys(ERROR_CODES);

t.test('every PGW_ code written under src/ is in the catalogue', async (t) => {
  const uses = codesInSource();
  t.ok(uses.size >= catalogue.length, `the scan finds the codes (${uses.size} distinct)`);
  const missing = [...uses].filter(([code]) => !(code in ERROR_CODES) && !RETIRED_CODES.includes(code));
  t.same(
    missing.map(([code, files]) => `${code} (in ${files.join(', ')})`),
    [],
    'add each to ERROR_CODES in src/errors.ts (one line) and to the README table',
  );
  const retiredInUse = [...uses.keys()].filter((code) => RETIRED_CODES.includes(code));
  t.same(retiredInUse, [], 'a retired code is never raised again');
});

t.test('each code is declared once and never reused', async (t) => {
  const declared = declaredCodes();
  t.same(duplicates(declared), [], 'no code declared twice in ERROR_CODES');
  t.same([...declared].sort(), [...catalogue].sort(), 'the declarations read from the text are the catalogue');
  t.same(duplicates([...RETIRED_CODES]), [], 'no retired code listed twice');
  t.same(catalogue.filter((c) => RETIRED_CODES.includes(c)), [], 'no retired code is back in the catalogue');
  for (const code of catalogue) {
    t.match(code, /^PGW_[A-Z0-9]+(_[A-Z0-9]+)*$/, `${code}: the code is its own name`);
    const info = codeInfo(code as ErrorCode);
    t.ok(info.meaning.length > 10 && !info.meaning.includes('\n'), `${code}: a one-line meaning`);
    if (info.http !== undefined) t.ok(info.http >= 400 && info.http <= 599, `${code}: an HTTP error status`);
  }
  const meanings = catalogue.map((c) => codeInfo(c as ErrorCode).meaning);
  t.same(duplicates(meanings), [], 'no two codes mean the same thing');
  const sqlstates = [...Object.values(SqlState), ...Object.values(ServerSqlState)];
  t.same(duplicates(sqlstates), [], 'one name per SQLSTATE');
  for (const s of sqlstates) t.match(s, /^[0-9A-Z]{5}$/, `${s} is a SQLSTATE`);
});

t.test('every code has a row in the README table, and the table lists no other', async (t) => {
  const documented = tableKeys(readmeSection(), /PGW_[A-Z0-9_]+/);
  t.same(duplicates(documented), [], 'no code documented twice');
  t.same(catalogue.filter((c) => !documented.includes(c)), [], 'catalogue codes missing from README.md, "Error codes"');
  t.same(documented.filter((c) => !catalogue.includes(c)), [], 'README rows for codes that are not in the catalogue');
});

t.test('every SQLSTATE pgwarden sends is in the README', async (t) => {
  const documented = tableKeys(readmeSection(), /[0-9A-Z]{5}/);
  const sent = Object.values(SqlState) as string[];
  t.same(sent.filter((s) => !documented.includes(s)), [], 'SqlState values missing from the README SQLSTATE table');
  t.same(documented.filter((s) => !sent.includes(s)), [], 'README rows for SQLSTATEs pgwarden does not send');
  for (const code of catalogue) {
    const s = codeInfo(code as ErrorCode).sqlstate;
    if (s !== undefined) t.ok(sent.includes(s), `${code}: its SQLSTATE is one pgwarden sends`);
  }
});

t.test('classes carry catalogued codes and match by class or code', async (t) => {
  const full = new RoutingError('PGW_QUEUE_FULL', 'too many clients waiting');
  t.ok(full instanceof PgwardenError && full instanceof Error);
  t.match(full, { name: 'RoutingError', code: 'PGW_QUEUE_FULL', sqlstate: SqlState.TOO_MANY_CONNECTIONS });
  t.equal(new RoutingError('PGW_QUEUE_TIMEOUT', 'm').sqlstate, '57P03', 'SQLSTATE from the catalogue');
  t.ok(hasCode(full, 'PGW_QUEUE_FULL'));
  t.notOk(hasCode(full, 'PGW_QUEUE_TIMEOUT'));
  t.notOk(hasCode({ code: 'PGW_QUEUE_FULL' }, 'PGW_QUEUE_FULL'), 'an object shaped like one is not one');
  t.match(new AdminHttpError('PGW_ADMIN_FORBIDDEN', 'wrong admin token'), { name: 'AdminHttpError', status: 403 });
  t.match(new UnknownBackendError('pg9'), { code: 'PGW_UNKNOWN_BACKEND', backend: 'pg9', message: 'no backend named pg9' });
  const config = new ConfigError('PGW_CONFIG_INVALID', 'x.yaml', [{ path: 'listeners', message: 'required key is missing' }]);
  t.equal(config.format(), 'invalid configuration x.yaml (1 problem):\n  listeners: required key is missing');
  t.equal(config.name, 'ConfigError');
});
