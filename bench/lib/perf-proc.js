// Processes for the benchmark: spawn a long-running server with a raised open-file limit, wait
// for its port, and read its CPU time and resident memory from /proc (proc(5): fields 14-15 of
// /proc/<pid>/stat are utime and stime in clock ticks; VmRSS in /proc/<pid>/status).
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const { readFileSync } = require('node:fs');
const net = require('node:net');

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/** The hard RLIMIT_NOFILE of this process: what a child may raise its soft limit to without CAP_SYS_RESOURCE. */
function hardFdLimit() {
  const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  const hard = line?.trim().split(/\s+/)[4];
  return hard === undefined || hard === 'unlimited' ? 1 << 20 : Number(hard);
}

/**
 * Starts `command args` with its soft open-file limit raised to the hard limit (`ulimit -n` in
 * a shell that then execs, so the returned pid is the server itself). stderr lines are kept for
 * error messages; `user` ({uid, gid}) drops root for servers that refuse it (PgBouncer).
 */
function spawnServer(name, command, args, { user, env } = {}) {
  const fds = hardFdLimit();
  const child = spawn('sh', ['-c', `ulimit -n ${fds}; exec "$@"`, name, command, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: env ?? process.env,
    ...(user ?? {}),
  });
  const output = [];
  const keep = (chunk) => {
    output.push(chunk.toString());
    if (output.length > 200) output.shift();
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exited = null;
  const exit = new Promise((resolve) => child.on('exit', (code, signal) => resolve((exited = { code, signal }))));
  child.on('error', (err) => keep(`${name}: ${err.message}\n`));
  return {
    name,
    pid: child.pid,
    output: () => output.join(''),
    exited: () => exited,
    /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
    async stop(graceMs = 5000) {
      if (exited !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exit;
      clearTimeout(timer);
    },
  };
}

/** Whether 127.0.0.1:port accepts a TCP connection now (the connection is closed at once). */
function acceptsConnection(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/** Resolves once 127.0.0.1:port accepts a TCP connection; rejects after timeoutMs or when `server` exits. */
async function waitForPort(port, server, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (server?.exited()) throw new Error(`${server.name} exited (${JSON.stringify(server.exited())}) before listening on ${port}:\n${server.output().slice(-2000)}`);
    if (await acceptsConnection(port)) return;
    if (Date.now() > deadline) throw new Error(`nothing listened on 127.0.0.1:${port} within ${timeoutMs} ms${server ? `:\n${server.output().slice(-2000)}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** utime + stime of pid (all its threads) in seconds. */
function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces; fields after it start past the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // fields 14 and 15 of proc(5)
}

/** cpuSeconds of pid and of its direct children (a relay that forks worker processes). */
function treeCpuSeconds(pid) {
  let children = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean);
  } catch {
    /* gone, or a kernel without CONFIG_PROC_CHILDREN: the process alone */
  }
  return children.reduce((sum, child) => sum + cpuSeconds(child), cpuSeconds(pid));
}

/** Resident set size of pid in bytes. */
function rssBytes(pid) {
  return memoryBytes(pid).rss;
}

/**
 * Resident memory of pid in bytes: `rss` (VmRSS) and `anon`, its anonymous part (RssAnon +
 * RssShmem: heap, malloc arenas, stacks). What a session costs is anonymous memory; the rest of
 * RSS is file-backed (the binary and its libraries: ~46 MiB of it for node), and the kernel may
 * drop such pages whenever they are cold — this VM runs a DAMON `pageout` scheme that does, so
 * VmRSS can dip by tens of MiB with no change in the process.
 */
function memoryBytes(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kB = (field) => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!m) throw new Error(`no ${field} for pid ${pid}`);
    return Number(m[1]) * 1024;
  };
  return { rss: kB('VmRSS'), anon: kB('RssAnon') + kB('RssShmem') };
}

/** Starts a CPU meter on pid; `stop()` returns the CPU used as percent of one core over the wall time. */
function cpuMeter(pid) {
  const cpu0 = cpuSeconds(pid);
  const t0 = process.hrtime.bigint();
  return {
    stop() {
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      const used = cpuSeconds(pid) - cpu0;
      return { cpuSeconds: used, wallSeconds: wall, cpuPercent: (100 * used) / wall };
    },
  };
}

module.exports = { CLK_TCK, hardFdLimit, spawnServer, acceptsConnection, waitForPort, cpuSeconds, treeCpuSeconds, rssBytes, memoryBytes, cpuMeter };
