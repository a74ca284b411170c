// The hook runner with real child processes: small sh scripts in a temporary directory.
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { HookConfig, HookEvent, HooksConfig } from '../../src/config/types';
import { Bus, type BusEvents } from '../../src/events';
import { hookEnvironment } from '../../src/hooks/env';
import { MAX_OUTPUT_LINE_CHARS } from '../../src/hooks/output';
import { HookRunner, type HookContext } from '../../src/hooks/runner';
import { createLogger } from '../../src/logger';
import { processAlive } from '../../src/harness/run';

const PRIMARY = { name: 'pg2', host: '127.0.0.1', port: 25432 };
const OLD = { name: 'pg1', host: '127.0.0.2', port: 15432 };

type LogLine = Record<string, unknown> & { level: string; event?: string; msg: string };

function setup(t: Test, hooks: HooksConfig, opts: { killGraceMs?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'pgwarden-hooks-'));
  const logs: LogLine[] = [];
  const log = createLogger('debug', { write: (s: string) => void logs.push(JSON.parse(s) as LogLine) });
  const bus = new Bus();
  const busEvents: { name: keyof BusEvents; payload: unknown }[] = [];
  bus.on('hook.run', (payload) => busEvents.push({ name: 'hook.run', payload }));
  bus.on('timeline', (payload) => busEvents.push({ name: 'timeline', payload }));
  const runner = new HookRunner(hooks, { log, bus, cwd: dir, ...opts });
  t.teardown(async () => {
    await runner.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, logs, runner, busEvents, output: (hook?: HookEvent) => logs.filter((l) => l.event === 'hook.output' && (!hook || l.hook === hook)).map((l) => l.line as string) };
}

function sh(script: string, timeout = 10_000, env: Record<string, string> = {}): HookConfig {
  return { command: ['sh', '-c', script], timeout, env };
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

t.test('environment: process env, hook env, then the PGWARDEN_* variables of the context', async (t) => {
  const { runner, output } = setup(t, {
    post_switchover: [
      sh('echo "$PGWARDEN_EVENT|$PGWARDEN_NEW_PRIMARY_NAME|$PGWARDEN_NEW_PRIMARY_HOST|$PGWARDEN_NEW_PRIMARY_PORT|$PGWARDEN_OLD_PRIMARY_NAME|$PGWARDEN_OLD_PRIMARY_HOST|$PGWARDEN_OLD_PRIMARY_PORT|${PGWARDEN_BACKEND_NAME-unset}|$BACKUP_DIR|$PWD"; echo "$PGWARDEN_TIME"', 10_000, {
        BACKUP_DIR: '/srv/backups',
        PGWARDEN_EVENT: 'faked-by-config',
      }),
    ],
  });
  const [outcome] = await runner.run('post_switchover', { newPrimary: PRIMARY, oldPrimary: OLD });
  t.equal(outcome?.outcome, 'ok');
  const [vars, time] = output();
  const cwd = (vars as string).split('|').pop();
  t.equal(vars, `post_switchover|pg2|127.0.0.1|25432|pg1|127.0.0.2|15432|unset|/srv/backups|${cwd}`);
  t.ok(cwd?.includes('pgwarden-hooks-'), 'runs in the configured cwd');
  t.ok(!Number.isNaN(Date.parse(time as string)) && (time as string).endsWith('Z'), `PGWARDEN_TIME is ISO: ${time}`);

  const env = hookEnvironment('on_backend_down', { backend: OLD }, { X: '1' }, { PATH: '/bin', PGWARDEN_NEW_PRIMARY_HOST: 'stale' });
  t.same(
    { ...env, PGWARDEN_TIME: 'T' },
    { PATH: '/bin', X: '1', PGWARDEN_EVENT: 'on_backend_down', PGWARDEN_TIME: 'T', PGWARDEN_BACKEND_NAME: 'pg1', PGWARDEN_BACKEND_HOST: '127.0.0.2', PGWARDEN_BACKEND_PORT: '15432' },
    'an inherited PGWARDEN_* variable the context does not set is removed',
  );
});

t.test('output is logged line by line: stdout at info, stderr at warn, bounded', async (t) => {
  const { runner, logs, output } = setup(t, {
    on_backend_down: [sh(`echo one; echo two >&2; printf 'no newline'`)],
    on_backend_up: [{ command: [process.execPath, '-e', `process.stdout.write('x'.repeat(10000) + '\\nshort\\n' + 'y'.repeat(${MAX_OUTPUT_LINE_CHARS} + 1).concat('\\n').repeat(80))`], timeout: 10_000, env: {} }],
  });
  await runner.run('on_backend_down', { backend: OLD });
  const lines = logs.filter((l) => l.event === 'hook.output');
  // stdout and stderr are two pipes: which one pgwarden reads first is up to the event loop, so
  // only the order within each stream is asserted.
  const ofStream = (stream: string) => lines.filter((l) => l.stream === stream).map((l) => [l.level, l.stream, l.line, l.hook, l.command]);
  t.same(ofStream('stdout'), [
    ['info', 'stdout', 'one', 'on_backend_down', 'sh'],
    ['info', 'stdout', 'no newline', 'on_backend_down', 'sh'],
  ]);
  t.same(ofStream('stderr'), [['warn', 'stderr', 'two', 'on_backend_down', 'sh']]);
  t.equal(lines.length, 3, 'nothing else');

  await runner.run('on_backend_up', { backend: OLD });
  const up = output('on_backend_up');
  t.ok(up[0] === `${'x'.repeat(MAX_OUTPUT_LINE_CHARS)}…`, 'a long line is cut');
  t.equal(up[1], 'short', 'the next line is intact');
  const logged = up.reduce((n, l) => n + l.length, 0);
  t.ok(logged <= 256 * 1024 + 1000, `at most ~256 kB logged per run (${logged})`);
  const dropped = logs.find((l) => l.event === 'hook.output_dropped');
  t.ok(dropped && (dropped.droppedLines as number) > 0 && (dropped.droppedChars as number) > 0, 'what was dropped is counted');
});

t.test('exit codes: 0 is ok, anything else failed; one log line and bus events per run', async (t) => {
  const { runner, logs, busEvents } = setup(t, {
    on_fence: [sh('exit 0'), sh('echo broken >&2; exit 3'), sh('kill -9 $$')],
  });
  const outcomes = await runner.run('on_fence', { backend: OLD, newPrimary: PRIMARY });
  t.same(
    outcomes.map((o) => [o.outcome, o.exitCode, o.signal]),
    [
      ['ok', 0, undefined],
      ['failed', 3, undefined],
      ['failed', undefined, 'SIGKILL'],
    ],
  );
  t.equal(outcomes[1]?.stderrTail, 'broken\n');
  t.ok(outcomes.every((o) => typeof o.durationMs === 'number' && o.durationMs >= 0));
  const runs = logs.filter((l) => l.event === 'hook.run');
  t.same(runs.map((l) => [l.level, l.outcome, l.hook]), [
    ['info', 'ok', 'on_fence'],
    ['warn', 'failed', 'on_fence'],
    ['warn', 'failed', 'on_fence'],
  ]);
  t.match(runs[1]?.msg, /on_fence hook sh failed: exit code 3/);
  t.same(
    busEvents.filter((e) => e.name === 'hook.run').map((e) => e.payload),
    outcomes.map((o) => ({ event: 'on_fence', command: 'sh', outcome: o.outcome, durationMs: o.durationMs, exitCode: o.exitCode })),
  );
  const timeline = busEvents.filter((e) => e.name === 'timeline').map((e) => e.payload as BusEvents['timeline']);
  t.same(timeline.map((e) => [e.event, e.level, e.backend]), [
    ['hook.run', 'info', 'pg2'],
    ['hook.run', 'warn', 'pg2'],
    ['hook.run', 'warn', 'pg2'],
  ]);
});

t.test('a hook past its timeout: its whole process group is killed', async (t) => {
  const { runner, dir, logs } = setup(t, {}, { killGraceMs: 300 });
  const cases: Record<string, string> = {
    'dies on SIGTERM': 'sleep 1000 & echo "$$ $!" > pids; wait',
    'ignores SIGTERM (SIGKILL after the grace)': 'trap "" TERM; sleep 1000 & echo "$$ $!" > pids; while :; do wait; done',
  };
  for (const [name, script] of Object.entries(cases)) {
    const hooks = { on_promote: [sh(script, 1500)] };
    const r = new HookRunner(hooks, { log: createLogger('silent'), cwd: dir, killGraceMs: 300 });
    const [outcome] = await r.run('on_promote', { newPrimary: PRIMARY });
    t.equal(outcome?.outcome, 'timeout', name);
    const [shellPid, sleepPid] = readFileSync(join(dir, 'pids'), 'utf8').trim().split(' ').map(Number) as [number, number];
    await waitFor(`${name}: shell ${shellPid} and its child sleep ${sleepPid} gone`, () => !processAlive(shellPid) && !processAlive(sleepPid));
    t.pass(`${name}: the hook and the sleep it started are gone`);
    rmSync(join(dir, 'pids'));
  }
  const logged = new HookRunner({ on_promote: [sh('sleep 1000', 200)] }, { log: createLogger('debug', { write: (s: string) => void logs.push(JSON.parse(s) as LogLine) }), killGraceMs: 300 });
  await logged.run('on_promote', {});
  const line = logs.find((l) => l.event === 'hook.run');
  t.equal(line?.level, 'warn');
  t.equal(line?.outcome, 'timeout');
  t.match(line?.msg, /timed out after 200 ms/);
});

t.test('a command that cannot start is outcome error, never a throw or a rejection', async (t) => {
  const { runner, dir, logs } = setup(t, {});
  const notExecutable = join(dir, 'not-executable.sh');
  writeFileSync(notExecutable, '#!/bin/sh\nexit 0\n');
  chmodSync(notExecutable, 0o644);
  const r = new HookRunner(
    { on_backend_up: [{ command: ['/nonexistent/hook'], timeout: 1000, env: {} }, { command: [notExecutable], timeout: 1000, env: {} }, sh('echo still runs')] },
    { log: createLogger('debug', { write: (s: string) => void logs.push(JSON.parse(s) as LogLine) }), cwd: dir },
  );
  void r.run('on_backend_up', {}); // not awaited, as on the routing path: must not reject
  const outcomes = await r.run('on_backend_up', {});
  t.same(outcomes.map((o) => o.outcome), ['error', 'error', 'ok']);
  t.match(outcomes[0]?.error, /ENOENT/);
  t.match(outcomes[1]?.error, /EACCES/);
  t.equal(logs.filter((l) => l.event === 'hook.run' && l.level === 'error').length, 4);
  t.same(await runner.run('on_backend_up', {}), [], 'an event without hooks runs nothing');
});

t.test('runs of one event never overlap; hooks of an event run in list order', async (t) => {
  const { runner, dir } = setup(t, {
    post_switchover: [
      sh('echo "start-$PGWARDEN_NEW_PRIMARY_NAME" >> marks; sleep 0.2; echo "end-$PGWARDEN_NEW_PRIMARY_NAME" >> marks'),
      sh('echo "second-$PGWARDEN_NEW_PRIMARY_NAME" >> marks'),
    ],
  });
  const runs = ['a', 'b', 'c'].map((name) => runner.run('post_switchover', { newPrimary: { ...PRIMARY, name } }));
  await Promise.all(runs);
  t.same(readFileSync(join(dir, 'marks'), 'utf8').trim().split('\n'), ['start-a', 'end-a', 'second-a', 'start-b', 'end-b', 'second-b', 'start-c', 'end-c', 'second-c']);
});

t.test('different events run concurrently', async (t) => {
  // The on_backend_down hook waits for a file that only the on_backend_up hook creates: were
  // events serialised with each other, it would time out.
  const { runner } = setup(t, {
    on_backend_down: [sh('while [ ! -f flag ]; do sleep 0.02; done; echo seen', 10_000)],
    on_backend_up: [sh('touch flag')],
  });
  const down = runner.run('on_backend_down', { backend: OLD });
  const up = runner.run('on_backend_up', { backend: OLD });
  const [[d], [u]] = await Promise.all([down, up]);
  t.equal(u?.outcome, 'ok');
  t.equal(d?.outcome, 'ok');
});

t.test('preSwitchover: any hook that exits non-zero, times out or cannot start vetoes', async (t) => {
  const ctx: HookContext = { oldPrimary: OLD, newPrimary: PRIMARY };
  const { dir } = setup(t, {});
  const check = async (hooks: HookConfig[]) => {
    const r = new HookRunner({ pre_switchover: hooks }, { log: createLogger('silent'), cwd: dir, killGraceMs: 200 });
    t.teardown(() => r.close());
    return r.preSwitchover(ctx);
  };
  t.same(await check([sh('exit 0'), sh('test "$PGWARDEN_NEW_PRIMARY_NAME" = pg2')]), { allowed: true });
  t.same(await check([]), { allowed: true }, 'no pre_switchover hooks: allowed');

  const veto = await check([sh('echo "replica lag too high" >&2; exit 2'), sh('touch second-ran')]);
  t.equal(veto.allowed, false);
  t.match(veto.reason, /pre_switchover hook sh failed: exit code 2.*replica lag too high/s);
  t.notOk(existsSync(join(dir, 'second-ran')), 'hooks after the veto do not run');

  const slow = await check([sh('sleep 1000', 200)]);
  t.equal(slow.allowed, false);
  t.match(slow.reason, /timed out/);

  const missing = await check([{ command: ['/nonexistent/veto'], timeout: 1000, env: {} }]);
  t.equal(missing.allowed, false);
  t.match(missing.reason, /could not run: .*ENOENT/);
});

t.test('close() kills running hooks and waits for them; later runs do nothing', async (t) => {
  const { runner, dir } = setup(t, { on_promote: [sh('echo $$ > pid; exec sleep 1000', 60_000)] }, { killGraceMs: 300 });
  const run = runner.run('on_promote', {});
  const queued = runner.run('on_promote', {});
  await waitFor('the hook to start', () => existsSync(join(dir, 'pid')) && readFileSync(join(dir, 'pid'), 'utf8').endsWith('\n'));
  const pid = Number(readFileSync(join(dir, 'pid'), 'utf8'));
  await runner.close();
  t.notOk(processAlive(pid), 'the hook is gone when close() resolves');
  const [[killed], [skipped]] = await Promise.all([run, queued]);
  t.equal(killed?.outcome, 'error');
  t.match(killed?.error, /shutting down/);
  t.equal(skipped?.outcome, 'error');
  t.match(skipped?.error, /closed/);
  const event: HookEvent = 'on_promote';
  t.same((await runner.run(event, {})).map((o) => o.outcome), ['error']);
});
