// Host metrics, `pgwarden agent` and the agent-check client, over real sockets and with real host
// readings (no PostgreSQL needed). When `haproxy` is installed, a real HAProxy checks our agent
// and its stats socket must show the weight / drain / down that our replies ask for.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import t, { type Test } from 'tap';
import { AgentServer, CONNECTION_TIMEOUT_MS, NO_SAMPLE_REPLY } from '../../src/agent/server';
import { Bus, type BusEvents, type RecentEvent } from '../../src/events';
import type { HostStatus } from '../../src/host/status';
import { AgentChecker, MAX_AGENT_LINE_BYTES, type AgentReport } from '../../src/health/agent-check';
import { FakeClock } from '../../src/clock';
import { HostSampler, type HostSample } from '../../src/host/sampler';
import type { HostThresholds } from '../../src/host/thresholds';
import { freePort } from '../../src/harness/ports';

const log = pino({ level: 'silent' });

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function startAgent(t: Test, thresholds: HostThresholds, source?: () => Promise<HostSample>): Promise<AgentServer> {
  const agent = new AgentServer({ host: '127.0.0.1', port: 0, thresholds, interval: 100, log, source });
  await agent.listen();
  t.teardown(() => agent.close());
  return agent;
}

/** One check against host:port: starts a checker, returns its first report, stops it. */
function checkOnce(port: number, timeout = 2000): Promise<AgentReport> {
  const checker = new AgentChecker({ host: '127.0.0.1', port, interval: 60_000, timeout, log });
  return new Promise((resolve) => {
    checker.once('report', (report) => {
      checker.stop();
      resolve(report);
    });
    checker.start();
  });
}

/** A TCP server on 127.0.0.1 that does `behaviour` with each connection. */
async function fakeAgent(t: Test, behaviour: (socket: net.Socket) => void): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    behaviour(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return (server.address() as net.AddressInfo).port;
}

t.test('HostSampler reads this host through systeminformation', async (t) => {
  const sampler = new HostSampler({ interval: 60_000, thresholds: {}, log });
  t.teardown(() => sampler.stop());
  const sample = new Promise<HostStatus>((resolve) => sampler.once('sample', resolve));
  sampler.start();
  const status = await sample;
  t.equal(sampler.latest, status);
  t.ok(status.cpuLoadPercent >= 0 && status.cpuLoadPercent <= 100, `cpu ${status.cpuLoadPercent}%`);
  t.ok(status.memoryUsedPercent > 0 && status.memoryUsedPercent <= 100, `memory ${status.memoryUsedPercent}%`);
  t.ok(status.disks.length > 0, `disks: ${status.disks.map((d) => `${d.mount} ${d.usedPercent}%`).join(', ')}`);
  for (const disk of status.disks) t.ok(disk.usedPercent >= 0 && disk.usedPercent <= 100, `${disk.mount} ${disk.usedPercent}%`);
  t.ok(Array.isArray(status.network));
  t.same(status.alerts, []);
  t.ok(!Number.isNaN(Date.parse(status.at)));
});

t.test('HostSampler announces crossings on the bus and the timeline, and survives failed samples', async (t) => {
  const clock = new FakeClock(Date.parse('2030-01-01T00:00:00Z'));
  const bus = new Bus();
  const crossings: BusEvents['host.threshold'][] = [];
  const timeline: RecentEvent[] = [];
  bus.on('host.threshold', (event) => crossings.push(event));
  bus.on('timeline', (event) => timeline.push(event));
  const script: Array<Partial<HostSample> | 'fail'> = [{}, { cpuLoadPercent: 95 }, 'fail', { cpuLoadPercent: 96 }, { cpuLoadPercent: 97 }, { cpuLoadPercent: 20 }];
  let calls = 0;
  const source = async (): Promise<HostSample> => {
    const step = script[Math.min(calls++, script.length - 1)];
    if (step === 'fail') throw new Error('no /proc today');
    return { cpuLoadPercent: 10, memoryUsedPercent: 30, disks: [], network: [], ...step };
  };
  const sampler = new HostSampler({ interval: 1000, thresholds: { cpu: { above: 80, for: 2000 } }, bus, log, clock, source });
  const samples: HostStatus[] = [];
  sampler.on('sample', (status) => samples.push(status));
  sampler.start();
  await clock.advanceAsync(0); // first sample at 0 s, cpu 10
  await clock.advanceAsync(1000); // 1 s: cpu 95, hold starts
  await clock.advanceAsync(1000); // 2 s: the sample fails, skipped
  await clock.advanceAsync(1000); // 3 s: cpu 96, held 2 s → alert
  t.same(crossings, [{ metric: 'cpu', crossed: true, value: 96, threshold: 80 }]);
  t.same(sampler.latest?.alerts, ['cpu']);
  await clock.advanceAsync(2000); // 4 s: cpu 97; 5 s: cpu 20 → cleared
  t.same(crossings[1], { metric: 'cpu', crossed: false, value: 20, threshold: 80 });
  t.same(
    timeline.map((e) => [e.event, e.level, e.message]),
    [
      ['host.threshold', 'warn', 'cpu 96% above 80% for 2000 ms'],
      ['host.threshold', 'info', 'cpu back to 20% (threshold 80%)'],
    ],
  );
  t.equal(timeline[0]?.time, '2030-01-01T00:00:03.000Z');
  t.equal(samples.length, 5, 'one sample per interval, the failed one skipped');
  sampler.stop();
  t.equal(clock.pendingTimers, 0, 'stop() leaves no timer behind');
});

t.test('a real agent with real readings answers a valid line', async (t) => {
  const agent = await startAgent(t, {});
  const report = await checkOnce(agent.address().port);
  t.equal(report.reachable, true);
  t.equal(report.raw, 'up ready 100%', 'no thresholds: always up, ready, full weight');
  t.same(report.reply, { state: 'up', health: 'up', admin: 'ready', weightPercent: 100, unknown: [] });
});

t.test('thresholds at 1% make the agent drain on memory and go down on disk, with comments', async (t) => {
  const memory = await startAgent(t, { memory: { above: 1, for: 0 } });
  const drained = await checkOnce(memory.address().port);
  t.equal(drained.reply?.admin, 'drain');
  t.equal(drained.reply?.health, 'up');
  t.match(drained.reply?.comment, /^memory \d+%$/);

  const disk = await startAgent(t, { disk: { above: 1, for: 0 } });
  const down = await checkOnce(disk.address().port);
  t.equal(down.reply?.state, 'down');
  t.match(down.reply?.comment, /^disk \/\S* \d+% full/);

  const both = await startAgent(t, { memory: { above: 1, for: 0 }, disk: { above: 1, for: 0 } });
  const report = await checkOnce(both.address().port);
  t.equal(report.reply?.health, 'down');
  t.equal(report.reply?.admin, 'drain');
  t.match(report.reply?.comment, /disk .* full; memory \d+%$/);
});

t.test('before its first sample the agent says nothing that changes state', async (t) => {
  const never = new Promise<HostSample>(() => undefined);
  const agent = new AgentServer({ host: '127.0.0.1', port: 0, thresholds: {}, interval: 100, log, source: () => never });
  t.equal(agent.reply(), NO_SAMPLE_REPLY);
  t.teardown(() => agent.close());
});

t.test('a connection that never reads or closes is cut by the agent', async (t) => {
  const agent = await startAgent(t, {});
  const socket = net.connect(agent.address().port, '127.0.0.1');
  socket.on('error', () => undefined);
  socket.pause(); // never reads, so never sees the agent's FIN and never closes its side
  t.teardown(() => socket.destroy());
  await waitFor('the agent to see the connection', () => agent.openConnections === 1);
  await waitFor('the agent to cut it', () => agent.openConnections === 0, CONNECTION_TIMEOUT_MS + 5000);
  t.pass('cut');
});

t.test('unreachable and misbehaving agents give reports without a reply', async (t) => {
  const refused = await checkOnce(await freePort());
  t.equal(refused.reachable, false);
  t.equal(refused.reply, undefined);
  t.match(refused.error, /ECONNREFUSED/);

  const garbage = await checkOnce(await fakeAgent(t, (s) => s.end('hello world\n')));
  t.equal(garbage.reachable, true);
  t.same(garbage.reply, { unknown: ['hello', 'world'] }, 'parsed, with nothing to apply');

  const incomplete = await checkOnce(await fakeAgent(t, (s) => s.end('up 50%')));
  t.equal(incomplete.reachable, true);
  t.equal(incomplete.reply, undefined, 'a line without terminator is ignored, as HAProxy does');
  t.match(incomplete.error, /before a complete line/);

  const silent = await checkOnce(await fakeAgent(t, () => undefined), 300);
  t.equal(silent.reachable, true);
  t.equal(silent.reply, undefined);
  t.match(silent.error, /no complete line within 300 ms/);

  const flood = await checkOnce(await fakeAgent(t, (s) => s.write('x'.repeat(MAX_AGENT_LINE_BYTES * 4))));
  t.equal(flood.reply, undefined);
  t.match(flood.error, /more than 1024 bytes/);
});

t.test('the checker keeps checking every interval until stopped', async (t) => {
  let reply = 'up 100%\n';
  const port = await fakeAgent(t, (s) => s.end(reply));
  const checker = new AgentChecker({ host: '127.0.0.1', port, interval: 50, timeout: 1000, log });
  t.teardown(() => checker.stop());
  const reports: AgentReport[] = [];
  checker.on('report', (report) => reports.push(report));
  checker.start();
  await waitFor('a first report', () => reports.length >= 1);
  reply = 'drain 30%\n';
  await waitFor('the new reply', () => checker.last?.raw === 'drain 30%');
  t.same(checker.last?.reply, { state: 'drain', admin: 'drain', weightPercent: 30, unknown: [] });
  checker.stop();
});

// Debian installs it in /usr/sbin, which is not on every user's PATH.
const haproxyBin = ['haproxy', '/usr/sbin/haproxy'].find((bin) => spawnSync(bin, ['-v']).status === 0);
const haproxy = spawnSync(haproxyBin ?? 'haproxy', ['-v'], { encoding: 'utf8' });
const haproxyMissing = haproxyBin === undefined;
if (haproxyMissing) console.log('# haproxy is not installed (apt-get install -y haproxy): skipping the HAProxy interoperability test');

t.test('a real HAProxy applies our agent replies', { skip: haproxyMissing ? 'haproxy is not installed (apt-get install -y haproxy)' : false }, async (t) => {
  t.comment(haproxy.stdout.split('\n')[0] ?? '');

  let current: HostSample = { cpuLoadPercent: 10, memoryUsedPercent: 30, disks: [{ mount: '/', usedPercent: 40 }], network: [] };
  const agent = await startAgent(t, { cpu: { above: 80, for: 0 }, memory: { above: 90, for: 0 }, disk: { above: 90, for: 0 } }, async () => current);
  const backendPort = await fakeAgent(t, () => undefined); // the "database": accepts and idles
  const frontendPort = await freePort();

  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgwarden-haproxy-'));
  const statsSocket = path.join(dir, 'admin.sock');
  writeFileSync(
    path.join(dir, 'haproxy.cfg'),
    [
      'global',
      `  stats socket ${statsSocket} mode 600 level admin`,
      'defaults',
      '  mode tcp',
      '  timeout connect 1s',
      '  timeout client 5s',
      '  timeout server 5s',
      'frontend fe',
      `  bind 127.0.0.1:${frontendPort}`,
      '  default_backend be',
      'backend be',
      `  server db1 127.0.0.1:${backendPort} weight 100 agent-check agent-addr 127.0.0.1 agent-port ${agent.address().port} agent-inter 200ms`,
      '',
    ].join('\n'),
  );
  const output: string[] = [];
  const child: ChildProcess = spawn(haproxyBin ?? 'haproxy', ['-db', '-f', path.join(dir, 'haproxy.cfg')], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  });
  await waitFor(`haproxy's stats socket (output: ${output.join('')})`, () => existsSync(statsSocket) || child.exitCode !== null);
  t.equal(child.exitCode, null, `haproxy runs (output: ${output.join('')})`);

  const server = async (): Promise<{ status: string; weight: number; agentStatus: string }> => {
    const csv = await statsCommand(statsSocket, 'show stat');
    const lines = csv.split('\n');
    const header = (lines[0] ?? '').replace(/^# /, '').split(',');
    const row = lines.find((line) => line.startsWith('be,db1,'))?.split(',') ?? [];
    const field = (name: string): string => row[header.indexOf(name)] ?? '';
    return { status: field('status'), weight: Number(field('weight')), agentStatus: field('agent_status') };
  };
  const expect = async (what: string, cond: (s: Awaited<ReturnType<typeof server>>) => boolean): Promise<void> => {
    let last: unknown;
    await waitFor(what, async () => cond((last = await server())), 10_000).catch((err: Error) => {
      throw new Error(`${err.message}; last: ${JSON.stringify(last)}; agent says ${JSON.stringify(agent.reply())}`);
    });
    t.pass(`${what}: ${JSON.stringify(last)}`);
  };

  await expect('calm host: full weight, in service', (s) => s.weight === 100 && !/DRAIN|DOWN|MAINT/.test(s.status) && s.agentStatus === 'L7OK');

  current = { ...current, cpuLoadPercent: 92 };
  await expect('cpu 92% over 80%: weight 40', (s) => s.weight === 40 && !/DRAIN|DOWN/.test(s.status));

  current = { ...current, cpuLoadPercent: 10, memoryUsedPercent: 95 };
  await expect('memory over: drain', (s) => s.status.startsWith('DRAIN'));

  current = { ...current, memoryUsedPercent: 30 };
  await expect('memory back: ready again (drain is sticky without it)', (s) => !/DRAIN/.test(s.status) && s.weight === 100);

  current = { ...current, disks: [{ mount: '/', usedPercent: 97 }] };
  await expect('disk full: down', (s) => s.status.startsWith('DOWN'));

  current = { ...current, disks: [{ mount: '/', usedPercent: 40 }] };
  await expect('disk freed: back in service', (s) => !/DOWN|DRAIN/.test(s.status) && s.weight === 100);
});

/** Sends one command to HAProxy's stats socket and returns everything it answers. */
function statsCommand(socketPath: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(socketPath);
    socket.setTimeout(2000, () => socket.destroy(new Error(`stats socket: no answer to "${command}" within 2000 ms`)));
    socket.on('connect', () => socket.write(`${command}\n`));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString()));
  });
}
