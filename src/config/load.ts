// The one path from a configuration file to the Config every module reads:
// YAML text → document → schema (unknown keys rejected with a hint, defaults applied,
// units converted, cross-key rules) → Config with contract names (to-config.ts) → deeply frozen.
//
// Every problem is collected before anything is thrown, each with its key path and the line
// in the file, so a user fixes the whole file in one round.

import { readFileSync } from 'node:fs';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import { ConfigError, type ConfigProblem } from '../errors';
import { configSchema, type UnknownKeyParams } from './schema';
import { toConfig } from './to-config';
import type { Config } from './types';

type Path = readonly PropertyKey[];

/** `['backends', 1, 'port']` → `backends[1].port`. */
export function formatPath(path: Path): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out === '' ? String(segment) : `.${String(segment)}`;
  }
  return out;
}

interface Position {
  readonly line: number;
  readonly column: number;
}

/**
 * Where the deepest existing part of `path` is written: the key for a mapping entry, the
 * item for a list entry. A missing key points at the mapping that should hold it.
 */
function locate(doc: Document, lines: LineCounter, path: Path): Position | undefined {
  let node: unknown = doc.contents;
  let offset: number | undefined = isMap(node) || isSeq(node) ? node.range?.[0] : undefined;
  for (const segment of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
      if (pair === undefined) break;
      if (isScalar(pair.key)) offset = pair.key.range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number') {
      const item: unknown = node.items[segment];
      if (item === undefined) break;
      if (isMap(item) || isSeq(item) || isScalar(item)) offset = item.range?.[0] ?? offset;
      node = item;
    } else {
      break;
    }
  }
  if (offset === undefined) return undefined;
  const { line, col } = lines.linePos(offset);
  return { line, column: col };
}

function isUnknownKey(params: unknown): params is UnknownKeyParams {
  return typeof params === 'object' && params !== null && (params as { kind?: unknown }).kind === 'unknown_key';
}

function toProblem(issue: z.core.$ZodIssue, doc: Document, lines: LineCounter): ConfigProblem {
  const path = formatPath(issue.path);
  const params: unknown = issue.code === 'custom' ? issue.params : undefined;
  let message = issue.message;
  let hint: string | undefined;
  if (isUnknownKey(params)) {
    message = `unknown key \`${path}\``;
    if (params.suggestion !== undefined) message += ` — did you mean \`${params.suggestion}\`?`;
    hint = params.hint;
  } else if (typeof params === 'object' && params !== null && typeof (params as { hint?: unknown }).hint === 'string') {
    hint = (params as { hint: string }).hint;
  }
  const position = locate(doc, lines, issue.path);
  return {
    path,
    message,
    ...(hint === undefined ? {} : { hint }),
    ...(position === undefined ? {} : { line: position.line, column: position.column }),
  };
}

/** YAML syntax errors, with the line and column the yaml library found them at. */
function syntaxProblems(doc: Document, text: string): ConfigProblem[] {
  const sourceLines = text.split(/\r?\n/);
  return doc.errors.map((error) => {
    const where = error.linePos?.[0];
    const first = error.message.split('\n')[0] ?? error.message;
    const detail =
      error.code === 'MULTIPLE_DOCS'
        ? 'the file holds more than one document (a second `---`); pgwarden reads exactly one'
        : first.replace(/ at line \d+, column \d+:?$/, '');
    const message = `invalid YAML: ${detail}`;
    const sourceLine = where === undefined ? '' : (sourceLines[where.line - 1] ?? '');
    const hint = /:\s*\[[0-9A-Fa-f:.]*\]:\d+/.test(sourceLine) ? 'quote IPv6 addresses in YAML: bind: "[::1]:6432"' : undefined;
    return {
      path: '',
      message,
      ...(hint === undefined ? {} : { hint }),
      ...(where === undefined ? {} : { line: where.line, column: where.col }),
    };
  });
}

/** Parses configuration text; throws ConfigError (PGW_CONFIG_INVALID) listing every problem. */
export function parseConfig(text: string, env: NodeJS.ProcessEnv = process.env, source = '<string>'): Config {
  const lines = new LineCounter();
  // `merge`: `<<: *defaults` is how people share settings between backends.
  const doc = parseDocument(text, { lineCounter: lines, merge: true });
  if (doc.errors.length > 0) throw new ConfigError('PGW_CONFIG_INVALID', source, syntaxProblems(doc, text));

  let raw: unknown;
  try {
    raw = doc.toJS();
  } catch (e) {
    // The yaml library refuses documents whose aliases expand exponentially ("billion laughs").
    throw new ConfigError('PGW_CONFIG_INVALID', source, [{ path: '', message: `invalid YAML: ${(e as Error).message}` }]);
  }
  if (raw === null || raw === undefined) {
    throw new ConfigError('PGW_CONFIG_INVALID', source, [
      {
        path: '',
        message: 'the configuration is empty; `listeners` and `backends` are required',
        hint: 'start from config/example.yaml',
      },
    ]);
  }

  const result = configSchema(env).safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => toProblem(issue, doc, lines));
    // Read top to bottom, like the file; problems without a line (none today) go last.
    problems.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity) || (a.column ?? 0) - (b.column ?? 0));
    throw new ConfigError('PGW_CONFIG_INVALID', source, problems);
  }
  return toConfig(result.data, env);
}

const READ_FAILURES: Readonly<Record<string, { message: string; hint: string }>> = {
  ENOENT: { message: 'no such file', hint: 'check the path given to --config' },
  EACCES: { message: 'permission denied', hint: 'make the file readable by the user pgwarden runs as' },
  EISDIR: { message: 'is a directory, not a file', hint: 'pass the path of the YAML file itself' },
};

/** Reads and parses a configuration file; throws ConfigError (PGW_CONFIG_UNREADABLE or PGW_CONFIG_INVALID). */
export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    const known = Object.hasOwn(READ_FAILURES, code) ? READ_FAILURES[code] : undefined;
    const problem: ConfigProblem = { path: '', ...(known ?? { message: (e as Error).message }) };
    throw new ConfigError('PGW_CONFIG_UNREADABLE', path, [problem]);
  }
  return parseConfig(text, env, path);
}
