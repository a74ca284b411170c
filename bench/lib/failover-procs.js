// Child processes for bench/failover: spawn a server whose stdout and stderr are read line by
// line (pgwarden logs JSON lines on stdout, HAProxy logs "Server x/y is DOWN" on stdout/stderr),
// remember every child so that nothing outlives the benchmark — not even when it fails or is
// interrupted — and wait for a TCP port to accept connections.
'use strict';
const { spawn } = require('node:child_process');
const readline = require('node:readline');
const { acceptsConnection } = require('./perf-proc');

const live = new Set();

// Synchronous on purpose: this also runs from process.on('exit'), where nothing async runs.
function killAllSync() {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
}
process.on('exit', killAllSync);

/**
 * Starts `command args`; `onLine(line, stream, receivedAt)` gets every output line with the
 * time it arrived here. Returns { child, stop(), tail() }: stop() sends SIGTERM, then SIGKILL
 * after `graceMs`, and resolves once the process has exited; tail() is the last lines of
 * output for error messages.
 */
function spawnLogged(name, command, args, { onLine, graceMs = 2000 } = {}) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  const lines = [];
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  exited.then(() => live.delete(child));
  child.on('error', (err) => lines.push(`${name}: ${err.message}`));
  for (const stream of ['stdout', 'stderr']) {
    readline.createInterface({ input: child[stream], crlfDelay: Infinity }).on('line', (line) => {
      const receivedAt = Date.now();
      lines.push(line);
      if (lines.length > 40) lines.shift();
      onLine?.(line, stream, receivedAt);
    });
  }
  let stopping;
  return {
    child,
    exited,
    tail: () => lines.slice(-20).join('\n'),
    stop() {
      stopping ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      })();
      return stopping;
    },
  };
}

/** Resolves once 127.0.0.1:port accepts a TCP connection; rejects after `timeoutMs`, or when `exited` settles first. */
async function waitForPort(port, { timeoutMs = 15_000, what = `port ${port}`, exited } = {}) {
  let gone = false;
  exited?.then(() => (gone = true));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (gone) throw new Error(`${what}: the process exited before listening`);
    if (await acceptsConnection(port)) return;
    if (Date.now() > deadline) throw new Error(`${what} did not accept connections within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** Polls `check()` until it returns true; rejects with `what` after `timeoutMs`. */
async function waitUntil(what, check, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

module.exports = { spawnLogged, waitForPort, waitUntil, sleep, killAllSync };
