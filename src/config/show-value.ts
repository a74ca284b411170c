// Errors of the configuration layer. Codes are stable: scripts and the CLI match on them.
//
// A ConfigError carries every problem found in one pass (not only the first), each with the
// key path the user wrote (`backends[1].port`), what was expected and, where it helps, a
// hint. `format()` renders them for a terminal; the CLI prints it and exits 2.

export type ConfigErrorCode = 'PGW_CONFIG_INVALID' | 'PGW_CONFIG_UNREADABLE';

export interface ConfigProblem {
  /** Key path as written in YAML (`health.interval`, `backends[1].port`); '' for the whole file. */
  readonly path: string;
  /** What is wrong and what was expected. */
  readonly message: string;
  /** How to fix it, when that is not obvious from the message. */
  readonly hint?: string;
  /** 1-based line in the YAML source, when known. */
  readonly line?: number;
  /** 1-based column in the YAML source, when known. */
  readonly column?: number;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code: ConfigErrorCode;
  readonly problems: readonly ConfigProblem[];
  /** File path, or `<string>` for text given directly. */
  readonly source: string;

  constructor(code: ConfigErrorCode, source: string, problems: readonly ConfigProblem[]) {
    super(renderProblems(code, source, problems));
    this.code = code;
    this.source = source;
    this.problems = problems;
  }

  /** One header line, then one line per problem; no stack trace. */
  format(): string {
    return this.message;
  }
}

/**
 * A single value that does not parse (a duration, a size, a bind address ...). Thrown by the
 * pure value parsers; the schema turns it into one problem at the key where the value sits.
 */
export class ConfigValueError extends Error {
  override readonly name = 'ConfigValueError';
  readonly code = 'PGW_CONFIG_BAD_VALUE';
  readonly hint?: string;

  constructor(message: string, hint?: string) {
    super(message);
    if (hint !== undefined) this.hint = hint;
  }
}

function renderProblems(code: ConfigErrorCode, source: string, problems: readonly ConfigProblem[]): string {
  const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`;
  const header =
    code === 'PGW_CONFIG_UNREADABLE'
      ? `cannot read configuration ${source}:`
      : `invalid configuration ${source} (${count}):`;
  return [header, ...problems.map((p) => `  ${renderProblem(source, p)}`)].join('\n');
}

function renderProblem(source: string, problem: ConfigProblem): string {
  const column = problem.column === undefined ? '' : `:${problem.column}`;
  const where = problem.line === undefined ? '' : `${source}:${problem.line}${column}: `;
  // An unknown-key message already names the full path; do not say it twice.
  const path = problem.path === '' || problem.message.includes(`\`${problem.path}\``) ? '' : `${problem.path}: `;
  const hint = problem.hint === undefined ? '' : ` (hint: ${problem.hint})`;
  return `${where}${path}${problem.message}${hint}`;
}

/** How a value the user wrote is shown in a message: strings quoted, collections named. */
export function showValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'an empty value';
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return String(value);
}
