// The Dockerfile, checked without Docker (none on these machines): every file it copies exists,
// and the image's entrypoint and HEALTHCHECK work in a temporary directory laid out the way the
// runtime stage lays out the image (dist/ as `npm run build` left it, node_modules linked).
// Needs dist/: the suite's pretest builds it (`npm run build` when running this file alone).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import t, { type Test } from 'tap';
import { parse as parseYaml } from 'yaml';
import { freePort } from '../../src/harness/ports';

const REPO = join(__dirname, '..', '..');

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  name?: string;
  instructions: Instruction[];
}

/** Instructions by stage; `\` continuations joined, comments dropped. */
function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const logical = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  for (const line of logical) {
    const m = /^([A-Z]+)\s+(.*)$/.exec(line);
    if (!m) throw new Error(`unparsable Dockerfile line: ${line}`);
    const [, op, args] = m;
    if (op === 'FROM') stages.push({ name: /\sAS\s+(\S+)/i.exec(args)?.[1], instructions: [] });
    stages[stages.length - 1].instructions.push({ op, args });
  }
  return stages;
}

/** COPY [--from=x] SRC... DEST → sources and destination. */
function copyArgs(args: string): { from?: string; sources: string[]; dest: string } {
  const words = args.split(/\s+/);
  let from: string | undefined;
  while (words[0].startsWith('--')) {
    const flag = words.shift()!;
    if (flag.startsWith('--from=')) from = flag.slice('--from='.length);
  }
  const dest = words.pop()!;
  return { from, sources: words, dest };
}

/** The exec form `["a", "b"]` of ENTRYPOINT/CMD. */
function execForm(stage: Stage, op: string): string[] {
  const ins = stage.instructions.filter((i) => i.op === op).pop();
  if (!ins) throw new Error(`no ${op} in the runtime stage`);
  return JSON.parse(ins.args) as string[];
}

const dockerfile = readFileSync(join(REPO, 'Dockerfile'), 'utf8');
const stages = parseDockerfile(dockerfile);
const runtime = stages[stages.length - 1];
const workdir = runtime.instructions.filter((i) => i.op === 'WORKDIR').pop()!.args;

t.test('every COPY source exists: in the repo, or as what the build stage makes', async (t) => {
  const built: Record<string, string[]> = {};
  for (const stage of stages) {
    const made: string[] = [];
    for (const { op, args } of stage.instructions) {
      if (op !== 'COPY') continue;
      const { from, sources, dest } = copyArgs(args);
      for (const src of sources) {
        if (from === undefined) {
          t.ok(existsSync(join(REPO, src)), `COPY ${src} (${stage.name ?? 'runtime'} stage) exists in the repo`);
        } else {
          t.ok(built[from], `COPY --from=${from}: stage ${from} is declared before`);
          t.ok(built[from]?.some((p) => src === p || src.startsWith(`${p}/`)), `${src} is something stage ${from} makes (${built[from]?.join(', ')})`);
        }
      }
      made.push(...sources.map((s) => join('/app', s)));
      void dest;
    }
    // What the build stage's RUN produces: npm ci's node_modules and its `prepare` script's dist/
    // (package.json: "prepare": "tsc -p tsconfig.json", outDir dist).
    if (stage.name === 'build') {
      const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
      t.match(pkg.scripts.prepare, /tsc -p tsconfig\.json/, 'npm ci in the build stage builds dist/ (prepare script)');
      const outDir = (JSON.parse(readFileSync(join(REPO, 'tsconfig.json'), 'utf8')) as { compilerOptions: { outDir: string } }).compilerOptions.outDir;
      made.push('/app/node_modules', join('/app', outDir));
      built[stage.name] = made;
    }
  }
});

t.test('the runtime stage has what the README promises', async (t) => {
  const runs = runtime.instructions.filter((i) => i.op === 'RUN').map((i) => i.args).join('\n');
  t.match(runs, /apt-get install[^\n]*postgresql-client/, 'postgresql-client (pg_basebackup, psql) is installed');
  const copies = runtime.instructions.filter((i) => i.op === 'COPY').map((i) => copyArgs(i.args));
  t.ok(copies.some((c) => c.sources.includes('config/hooks')), 'config/hooks/ is copied');
  t.ok(runtime.instructions.some((i) => i.op === 'HEALTHCHECK'), 'there is a HEALTHCHECK');
  t.equal(runtime.instructions.filter((i) => i.op === 'USER').pop()?.args, 'node', 'runs as the non-root node user');
});

/**
 * A fake root: ROOT/app is the image's WORKDIR with what the runtime stage copies there, and
 * ROOT/etc/pgwarden/pgwarden.yaml the mounted config. Paths in the image's commands that point
 * into either are rewritten to ROOT/...; the rest (/dev/null, `node`) is used as is.
 */
function layOutImage(t: Test): { root: string; map: (arg: string) => string } {
  if (!existsSync(join(REPO, 'dist', 'cli.js'))) throw new Error('dist/cli.js is missing: run `npm run build` first (npm test does it in pretest)');
  const root = mkdtempSync(join(tmpdir(), 'pgwarden-image-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const app = join(root, workdir);
  mkdirSync(app, { recursive: true });
  for (const { op, args } of runtime.instructions) {
    if (op !== 'COPY') continue;
    const { from, sources, dest } = copyArgs(args);
    for (const src of sources) {
      const target = join(app, dest.endsWith('/') ? join(dest, src.split('/').pop()!) : dest);
      const origin = join(REPO, from ? src.replace(/^\/app\//, '') : src);
      mkdirSync(dirname(target), { recursive: true });
      if (origin.endsWith('node_modules')) symlinkSync(origin, target, 'dir');
      else cpSync(origin, target, { recursive: true });
    }
  }
  mkdirSync(join(root, 'etc', 'pgwarden'), { recursive: true });
  const map = (arg: string) => (arg.startsWith(`${workdir}/`) || arg.startsWith('/etc/pgwarden/') ? join(root, arg) : arg);
  return { root, map };
}

t.test('the entrypoint runs `pgwarden check` on the shipped example config', async (t) => {
  const { root, map } = layOutImage(t);
  const [cmd, ...args] = execForm(runtime, 'ENTRYPOINT');
  t.equal(cmd, 'node');
  // The example names password_env: PGWARDEN_CHECK_PASSWORD, which `docker run -e` provides.
  const env = { PATH: process.env.PATH, NODE_ENV: 'production', PGWARDEN_CHECK_PASSWORD: 'secret' };
  const r = spawnSync(process.execPath, [...args.map(map), 'check', '--config', 'config/example.yaml'], { cwd: join(root, workdir), env, encoding: 'utf8', timeout: 30_000 });
  t.equal(r.status, 0, `exit 0 (stderr: ${r.stderr})`);
  t.match(r.stdout, /rw/, 'prints the listeners');
  t.match(r.stdout, /pg1/, 'prints the backends');
  // The example's hook command is relative to the working directory: it must resolve in the image.
  const example = parseYaml(readFileSync(join(root, workdir, 'config', 'example.yaml'), 'utf8')) as { hooks: Record<string, { command: string[] }[]> };
  for (const [event, hooks] of Object.entries(example.hooks)) {
    for (const h of hooks) {
      const path = join(root, workdir, h.command[0]);
      t.doesNotThrow(() => accessSync(path, constants.X_OK), `${event} hook ${h.command[0]} is executable in the image`);
    }
  }
});

/** The HEALTHCHECK's CMD (shell form) with image paths mapped into the fake root. */
function healthcheck(root: string, map: (a: string) => string): () => number {
  const ins = runtime.instructions.find((i) => i.op === 'HEALTHCHECK')!;
  const shell = /\bCMD\s+(.*)$/.exec(ins.args)![1];
  const mapped = shell.split(/(\s+)/).map((w) => (w.trim() ? map(w) : w)).join('').replace(/^node\s/, `${process.execPath} `);
  return () => spawnSync('sh', ['-c', mapped], { cwd: join(root, workdir), encoding: 'utf8', timeout: 30_000 }).status ?? -1;
}

async function until(what: string, ok: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function startImage(t: Test, root: string, map: (a: string) => string): ChildProcess {
  const [, ...entry] = execForm(runtime, 'ENTRYPOINT');
  const cmd = execForm(runtime, 'CMD');
  const child = spawn(process.execPath, [...entry, ...cmd].map(map), { cwd: join(root, workdir), stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr!.setEncoding('utf8');
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return child;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

t.test('HEALTHCHECK: healthy while the proxy runs with an admin section, unhealthy otherwise', async (t) => {
  const { root, map } = layOutImage(t);
  const [rw, ro, admin, pg] = [await freePort(), await freePort(), await freePort(), await freePort()];
  // The backend port has nothing listening: the proxy runs (checks fail), which is all the
  // healthcheck asks — a process whose admin API answers.
  const config = (withAdmin: boolean) =>
    [
      'listeners:',
      `  - { name: rw, bind: 127.0.0.1:${rw}, route: primary }`,
      `  - { name: ro, bind: 127.0.0.1:${ro}, route: replica }`,
      'backends:',
      `  - { name: pg1, host: 127.0.0.1, port: ${pg} }`,
      'proxy: { shutdown_timeout: 1s }',
      withAdmin ? `admin: { bind: 127.0.0.1:${admin} }` : '',
      '',
    ].join('\n');
  const configPath = join(root, 'etc', 'pgwarden', 'pgwarden.yaml');
  const probe = healthcheck(root, map);

  writeFileSync(configPath, config(true));
  t.equal(probe(), 1, 'exit 1 (unhealthy) before the proxy runs');
  const child = startImage(t, root, map);
  await until('the healthcheck to pass', () => probe() === 0, 20_000);
  t.pass('exit 0 (healthy) once the proxy serves its admin API');
  await stop(child);
  t.equal(probe(), 1, 'exit 1 (unhealthy) after it stopped');

  writeFileSync(configPath, config(false));
  const bare = startImage(t, root, map);
  let stderr = '';
  bare.stderr!.on('data', (s: string) => (stderr += s));
  await new Promise((r) => setTimeout(r, 1000));
  t.equal(bare.exitCode, null, `the proxy runs without an admin section (${stderr})`);
  t.equal(probe(), 1, 'but the healthcheck fails (1, never Docker-reserved 2): nothing to ask');
  await stop(bare);
});
