// Layers point down (DESIGN.md, "Layers"; STYLE.md, habit 16): every import in src/ is read
// (import / import type / export … from / require / import()), resolved to a file, and must not
// reach a layer above the importing file's own. Imports within one layer are fine. Import cycles
// between files fail too, type-only imports included: a cycle of types is still two files that
// cannot be understood one without the other.
//
// The layer order, written once, lowest first. A file's layer is found by its path under src/:
// an entry in `files` wins over one in `dirs`. A file in no layer fails the test: place it.
//
// Placements that differ from DESIGN.md's picture, and why:
// - health/types.ts is on the ground floor. It is pure vocabulary (failure layers, probe results,
//   types and one frozen table, no imports) that the event bus (events.ts),
//   host sampling, routing and the proxy all speak; it lives beside the checkers that produce
//   those results. Everything else in health/ is the health layer.
// - control/ holds the pieces app.ts was split into (reactions, reload, drain, session reporting):
//   they are control by nature, and they reach the running proxy only through narrow interfaces
//   (control/context.ts, control/reload.ts Reloadable, control/observability.ts ObservedProxy),
//   never by importing App. The "app" layer is app.ts (and src/app/ should it grow one).
// - coordination/ is the etcd client behind a small interface of ours (store.ts): a side effect
//   like hooks and metrics. What the instances do with it (member, leader) is control
//   (control/coordination/).
// - survive/ (issue 19: sessions that outlive their server) is proxy: the session mover routes and
//   connects like a session (routing, proxy/backend-attempt.ts) and the session uses the mover.
// - src/harness/ (the PostgreSQL cluster harness for the demo, tests and benchmarks) is not a
//   layer of the proxy: only cli/demo may import it (tests and benches are outside src/), and it
//   may import only the ground floor.
import { readdirSync, readFileSync, existsSync, statSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';

interface Layer {
  readonly name: string;
  readonly dirs?: readonly string[];
  readonly files?: readonly string[];
}

const LAYERS: readonly Layer[] = [
  {
    name: 'ground floor',
    dirs: ['protocol', 'net', 'config', 'errors'],
    files: ['errors.ts', 'clock.ts', 'events.ts', 'logger.ts', 'health/types.ts'],
  },
  { name: 'hooks, metrics, host, coordination store', dirs: ['hooks', 'metrics', 'host', 'coordination'] },
  { name: 'health', dirs: ['health'] },
  { name: 'routing', dirs: ['routing'] },
  { name: 'proxy', dirs: ['proxy', 'survive'] },
  { name: 'admin, agent', dirs: ['admin', 'agent'] },
  { name: 'control', dirs: ['control'] },
  { name: 'app', dirs: ['app'], files: ['app.ts'] },
  { name: 'cli, demo', files: ['cli.ts', 'demo.ts', 'process-guard.ts'] },
];

/** Not a layer: the cluster harness. Who may import it, and what it may import. */
const HARNESS_DIR = 'harness';
const HARNESS_IMPORTERS: readonly string[] = ['cli.ts', 'demo.ts'];
const HARNESS_MAY_IMPORT = 'ground floor';

const SRC = path.resolve(__dirname, '../../src');

/** Path relative to src/, with forward slashes. */
function rel(file: string): string {
  return path.relative(SRC, file).split(path.sep).join('/');
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(full));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(full);
  }
  return out.sort();
}

/** 'harness' for the cluster harness, else the index in LAYERS, else undefined (unplaced). */
function layerOf(relPath: string): number | 'harness' | undefined {
  if (relPath.split('/')[0] === HARNESS_DIR) return 'harness';
  for (let i = 0; i < LAYERS.length; i++) if (LAYERS[i]!.files?.includes(relPath)) return i;
  const top = relPath.includes('/') ? relPath.split('/')[0]! : undefined;
  if (top === undefined) return undefined;
  for (let i = 0; i < LAYERS.length; i++) if (LAYERS[i]!.dirs?.includes(top)) return i;
  return undefined;
}

function layerName(l: number | 'harness'): string {
  return l === 'harness' ? 'the cluster harness' : LAYERS[l]!.name;
}

/** Drops comments (an import named in a comment is not an import). Strings holding '//' on an import line do not occur. */
function stripComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

/** Every module specifier the text imports, in any of the forms TypeScript and CommonJS allow. */
export function importSpecifiers(text: string): string[] {
  const code = stripComments(text);
  const out: string[] = [];
  const patterns = [
    /(?:^|[\n;])\s*(?:import|export)\b[^;'"`]*?\bfrom\s*['"]([^'"]+)['"]/g, // import x / import type x / export … from '…' (multi-line too)
    /(?:^|[\n;])\s*import\s*['"]([^'"]+)['"]/g, // import '…' (side effects)
    /\brequire\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const re of patterns) for (const m of code.matchAll(re)) out.push(m[1]!);
  return out;
}

/** The file a relative specifier names, or undefined for a package (pg, node:net …). */
function resolveImport(from: string, spec: string): string | undefined {
  if (!spec.startsWith('.')) return undefined;
  const base = path.resolve(path.dirname(from), spec);
  for (const candidate of [base, `${base}.ts`, path.join(base, 'index.ts')]) {
    if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
  }
  return `${base} (missing)`;
}

const files = sourceFiles(SRC);
const graph = new Map<string, string[]>();
for (const file of files) {
  const targets: string[] = [];
  for (const spec of importSpecifiers(readFileSync(file, 'utf8'))) {
    const target = resolveImport(file, spec);
    if (target !== undefined) targets.push(target);
  }
  graph.set(file, [...new Set(targets)]);
}

t.test('the import reader sees every form of import', async (t) => {
  const sample = [
    "import net from 'node:net';",
    "import type { A } from './a';",
    'import {',
    '  B,',
    '  type C,',
    "} from '../b';",
    "export { D } from './d';",
    "export type { E } from './e';",
    "import './side-effect';",
    "const f = require('./f');",
    "const g = await import('./g');",
    "// import { H } from './h';",
    "/* import { I } from './i'; */",
    "const s = 'not an import from here';",
  ].join('\n');
  t.same(importSpecifiers(sample).sort(), ['../b', './a', './d', './e', './f', './g', './side-effect', 'node:net'].sort());
});

t.test('every file under src/ is in a layer', async (t) => {
  const unplaced = files.map(rel).filter((f) => layerOf(f) === undefined);
  t.same(unplaced, [], 'add these to LAYERS in test/unit/layers.test.ts (DESIGN.md, "Layers")');
  let edges = 0;
  for (const targets of graph.values()) edges += targets.length;
  t.ok(edges > 100, `the reader found the imports (${edges} between files of src/)`);
});

t.test('every relative import resolves to a file', async (t) => {
  const missing: string[] = [];
  for (const [file, targets] of graph) for (const target of targets) if (target.endsWith('(missing)')) missing.push(`${rel(file)} → ${target}`);
  t.same(missing, []);
});

t.test('imports point down: no module imports from a layer above its own', async (t) => {
  const violations: string[] = [];
  for (const [file, targets] of graph) {
    const from = rel(file);
    const fromLayer = layerOf(from);
    if (fromLayer === undefined) continue; // reported above
    for (const target of targets) {
      if (target.endsWith('(missing)') || !target.startsWith(SRC + path.sep)) continue; // ../package.json
      const to = rel(target);
      const toLayer = layerOf(to);
      if (toLayer === undefined) continue;
      if (toLayer === 'harness') {
        if (fromLayer !== 'harness' && !HARNESS_IMPORTERS.includes(from)) violations.push(`${from} → ${to}: only ${HARNESS_IMPORTERS.join(' and ')} may use the cluster harness`);
        continue;
      }
      if (fromLayer === 'harness') {
        if (LAYERS[toLayer]!.name !== HARNESS_MAY_IMPORT) violations.push(`${from} → ${to}: the cluster harness may import only the ground floor`);
        continue;
      }
      if (toLayer > fromLayer) violations.push(`${from} (${layerName(fromLayer)}) → ${to} (${layerName(toLayer)})`);
    }
  }
  t.same(violations, [], 'move the shared piece down to the lower layer (a type two layers share lives in the lower one)');
});

t.test('no import cycles between files', async (t) => {
  const cycles: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (file: string): void => {
    state.set(file, 'visiting');
    stack.push(file);
    for (const next of graph.get(file) ?? []) {
      if (!graph.has(next)) continue;
      const s = state.get(next);
      if (s === 'visiting') cycles.push([...stack.slice(stack.indexOf(next)), next].map(rel).join(' → '));
      else if (s === undefined) visit(next);
    }
    stack.pop();
    state.set(file, 'done');
  };
  for (const file of graph.keys()) if (!state.has(file)) visit(file);
  t.same(cycles, [], 'break each cycle: move what both files need into a third, or pass an interface');
});
