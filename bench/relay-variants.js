#!/usr/bin/env node
// The relay techniques the hot path was chosen from, each as a bare TCP relay (no routing, no
// checks) in front of the same real primary, measured with pgbench select-only: TPS and the
// relay's CPU per transaction. Interleaved, `--rounds` times, order reversed every other round.
//
//   npm run build && node bench/relay-variants.js [--seconds 10] [--rounds 3] [-c 8] [--only a,b]
//
// `-c 8,64` measures both client counts in one run: each round runs every variant at each count.
// The `tls` variants (and pgwarden and PgBouncer terminating TLS) run pgbench with PGSSLMODE=require.
//
// A variant runs as `node bench/relay-variants.js --serve VARIANT PORT PG_PORT`.
'use strict';
const net = require('node:net');
const { parseArgs } = require('node:util');

const { values: opts } = parseArgs({
  options: {
    serve: { type: 'string' },
    seconds: { type: 'string' },
    rounds: { type: 'string' },
    clients: { type: 'string', short: 'c' },
    only: { type: 'string' },
  },
  allowPositionals: true,
  strict: false,
});

// ---- the variants ---------------------------------------------------------------------------

/** 'data' events and write(), pause on a full writer, resume on 'drain' (pgwarden before onread). */
function loop(src, dst, look) {
  src.on('data', (c) => {
    if (look) look(c);
    if (!dst.write(c)) src.pause();
  });
  dst.on('drain', () => src.resume());
}

/** Same, but every write corked and uncorked on the next tick (write coalescing). */
function corkedLoop(src, dst) {
  src.on('data', (c) => {
    dst.cork();
    const ok = dst.write(c);
    process.nextTick(() => dst.uncork());
    if (!ok) src.pause();
  });
  dst.on('drain', () => src.resume());
}

const SHARED = Buffer.allocUnsafe(64 * 1024);
/**
 * `onread` options: each read lands in one shared buffer and is copied out, shown to `look`,
 * and handed to `send(holder, chunk)`, whose result (false: stop reading) goes back to Node.
 */
function sharedRead(holder, look, send) {
  return {
    buffer: SHARED,
    callback(n, buf) {
      const chunk = Buffer.allocUnsafe(n);
      buf.copy(chunk, 0, 0, n);
      if (look) look(chunk);
      return send(holder, chunk);
    },
  };
}

/** onread, then write() (what pgwarden does now, src/net/relay-socket.ts). */
const onreadOptions = (holder, look) => sharedRead(holder, look, (h, chunk) => h.dst.write(chunk));

/**
 * onread, and each chunk written straight to the other socket's libuv handle (the StreamBase
 * writeBuffer that net.Socket's Writable ends in), skipping Writable's bookkeeping and its
 * after-write nextTick. A write libuv could not finish at once stops the reads until it completes.
 */
const streamWrap = process.binding('stream_wrap');
const directOptions = (holder, look) => sharedRead(holder, look, directWrite);
function directWrite(holder, chunk) {
  const handle = holder.dst._handle;
  if (!handle) return false;
  const req = new streamWrap.WriteWrap();
  req.handle = handle;
  req.oncomplete = holder.complete;
  req.async = false;
  req.buffer = chunk;
  const err = handle.writeBuffer(req, chunk);
  if (err) { holder.dst.destroy(); return false; }
  if (streamWrap.streamBaseState[streamWrap.kLastWriteWasAsync]) { holder.pending++; return false; }
  return true;
}

/**
 * onread, and each chunk handed straight to the other socket's `_write()` (the Writable
 * implementation hook, which net.Socket implements with the same libuv write), so Writable's
 * queue bookkeeping and after-write nextTick are skipped. A write that did not complete at once
 * stops the reads until its callback.
 */
const underWriteOptions = (holder, look) => sharedRead(holder, look, underWrite);
function underWrite(holder, chunk) {
  holder.writing = true;
  holder.doneAtOnce = false;
  holder.dst._write(chunk, 'buffer', holder.written);
  holder.writing = false;
  return holder.doneAtOnce;
}

/** The 5-byte-header frame tracker pgwarden runs on both directions. */
function frames() {
  const { FrameTracker } = require('../dist/protocol/frame-tracker');
  const s = new FrameTracker('server');
  const c = new FrameTracker('client');
  return { server: (b) => s.feed(b), client: (b) => c.feed(b) };
}

const VARIANTS = {
  pipe: { relay: (c, b) => (c.pipe(b), b.pipe(c)) },
  loop: { relay: (c, b) => (loop(c, b), loop(b, c)) },
  'loop+frames': { relay: (c, b) => { const f = frames(); loop(c, b, f.client); loop(b, c, f.server); } },
  'loop nodelay off': { noDelay: false, relay: (c, b) => (loop(c, b), loop(b, c)) },
  'loop cork': { relay: (c, b) => (corkedLoop(c, b), corkedLoop(b, c)) },
  'loop hwm 4k': { hwm: 4 * 1024, relay: (c, b) => (loop(c, b), loop(b, c)) },
  'loop hwm 1m': { hwm: 1024 * 1024, relay: (c, b) => (loop(c, b), loop(b, c)) },
  onread: { onread: true },
  'onread+frames': { onread: true, frames: true },
  'direct+frames': { onread: true, frames: true, direct: true },
  '_write+frames': { onread: true, frames: true, underWrite: true },
  // What more than one relay process would give: node:cluster's primary accepts and hands each
  // connection to the next worker in turn (round robin), so the sessions split evenly and each
  // then lives in one process.
  'onread+frames 2 processes': { onread: true, frames: true, processes: 2 },
  // The relay in native code on Node's libuv loop (bench/native-relay, issue 17): JavaScript
  // accepts and connects, then hands both fds to the addon and calls nothing per byte. It walks
  // the 5-byte headers both ways in C; `native+rfq` also calls a JS function per ReadyForQuery.
  native: { native: true },
  'native+rfq': { native: true, rfq: true },
  'native 2 processes': { native: true, processes: 2 }, // as HAProxy's two threads
  // The reference, in the same run: HAProxy in mode tcp (two threads, its default here).
  haproxy: { external: 'haproxy' },
  // TLS to the clients (pgbench with PGSSLMODE=require), plain text to the server (issue 14): the
  // floor of a Node.js relay that terminates TLS — answer the SSLRequest with 'S', a server-mode
  // TLSSocket over the accepted socket, nothing else — reading the TLS socket through 'data'
  // events or, as pgwarden does, into the shared buffer (the server's socket reads into the
  // shared buffer in both); then pgwarden itself and PgBouncer (`client_tls_sslmode = require`,
  // session mode), both started as bench/run's TLS phase starts them.
  'tls data': { tls: true },
  'tls onread+frames': { tls: true, onread: true, frames: true },
  'pgwarden tls': { tls: true, external: 'pgwarden' },
  'pgbouncer tls': { tls: true, external: 'pgbouncer' },
};

const NATIVE_ADDON = require('node:path').join(__dirname, 'native-relay', 'build', 'Release', 'relay.node');
const NATIVE_BUILD = 'cd bench/native-relay && ../../node_modules/.bin/node-gyp rebuild --nodedir=/usr';

/**
 * `native` variants: the client socket arrives paused (pauseOnConnect) and the server socket is
 * paused in its 'connect' listener, before net.Socket would start reading, so neither has read a
 * byte (PostgreSQL sends nothing before the client's start-up packet anyway). The addon dup()s
 * both fds and relays on its own descriptors; destroying the net.Sockets then closes only
 * Node's descriptors (libuv takes them out of its epoll set first), not the connections.
 */
function serveNative(v, port, pgPort) {
  const { relay } = require(NATIVE_ADDON);
  let sessions = 0;
  const ended = { sessions: 0, up: 0, down: 0, ready: 0, errors: 0 };
  const onReady = v.rfq ? (status) => { if (status !== 0x49 && status !== 0x54 && status !== 0x45) ended.errors++; } : undefined;
  const server = net.createServer({ noDelay: true, pauseOnConnect: true }, (client) => {
    const backend = net.connect({ port: pgPort, host: '127.0.0.1', noDelay: true });
    const close = () => (client.destroy(), backend.destroy());
    client.on('error', close).on('close', close);
    backend.on('error', close).on('close', close);
    backend.once('connect', () => {
      backend.pause();
      if (!client._handle) return close(); // the client went away while we connected
      client.removeListener('close', close);
      backend.removeListener('close', close);
      sessions++;
      relay(client._handle.fd, backend._handle.fd, (err, up, down, ready) => {
        ended.sessions++, ended.up += up, ended.down += down, ended.ready += ready;
        if (err) ended.errors++;
      }, onReady);
      client.destroy();
      backend.destroy();
    });
  });
  server.listen(port, '127.0.0.1');
  // What the sessions reported through onEnd, once all have ended (up to 5 s after the driver
  // stops this process: PostgreSQL's backends close their side as they exit).
  process.on('SIGTERM', () => {
    const t0 = Date.now();
    const report = () => {
      if (ended.sessions < sessions && Date.now() - t0 < 5000) return void setTimeout(report, 20);
      console.error(`  native: ${ended.sessions}/${sessions} sessions ended (${Date.now() - t0} ms after SIGTERM), ${ended.ready} ReadyForQuery, ${ended.up} B up, ${ended.down} B down, ${ended.errors} errors`);
      process.exit(0);
    };
    report();
  });
}

/**
 * `tls` variants: the client's SSLRequest (8 bytes; pgbench sends it alone and waits for the
 * answer) gets 'S', then a server-mode TLSSocket over the socket relays to the server, whose
 * socket reads into the shared buffer. The certificate is RELAY_TLS_CERT / RELAY_TLS_KEY.
 */
function serveTls(v, port, pgPort) {
  const tls = require('node:tls');
  const { readFileSync } = require('node:fs');
  const { readIntoSharedBuffer } = require('../dist/net/user-buffer-read');
  const secureContext = tls.createSecureContext({ cert: readFileSync(process.env.RELAY_TLS_CERT), key: readFileSync(process.env.RELAY_TLS_KEY) });
  const server = net.createServer({ noDelay: true }, (raw) => {
    raw.on('error', () => raw.destroy()); // before the SSLRequest too
    raw.once('data', (request) => {
      raw.pause();
      if (request.length !== 8) return raw.destroy();
      raw.write('S');
      const client = new tls.TLSSocket(raw, { isServer: true, secureContext });
      const f = v.frames ? frames() : {};
      const toClient = { dst: client };
      const backend = net.connect({ port: pgPort, host: '127.0.0.1', noDelay: true, onread: onreadOptions(toClient, f.server) });
      const close = () => (client.destroy(), backend.destroy());
      const up = (chunk) => {
        if (f.client) f.client(chunk);
        return backend.write(chunk);
      };
      client.on('data', (chunk) => up(chunk) || client.pause());
      if (v.onread) {
        client.once('secure', () => readIntoSharedBuffer(client, (n, buf) => {
          const chunk = Buffer.allocUnsafe(n);
          buf.copy(chunk, 0, 0, n);
          return up(chunk);
        }));
      }
      client.on('drain', () => backend.resume());
      backend.on('drain', () => client.resume());
      for (const s of [client, backend, raw]) {
        s.on('error', close);
        s.on('close', close);
      }
    });
  });
  server.listen(port, '127.0.0.1');
}

function serve(name, port, pgPort) {
  const v = VARIANTS[name];
  if (v.external === 'haproxy') return serveHaproxy(port, pgPort);
  if (v.tls) return serveTls(v, port, pgPort);
  if (v.processes) {
    const cluster = require('node:cluster');
    if (cluster.isPrimary) {
      for (let i = 0; i < v.processes; i++) cluster.fork();
      process.on('SIGTERM', () => {
        const workers = Object.values(cluster.workers);
        if (!v.native) {
          for (const w of workers) w.process.kill('SIGKILL');
          process.exit(0);
        }
        // native: each worker reports its sessions' onEnd totals first (they exit with this process).
        let left = workers.length;
        for (const w of workers) {
          w.process.once('exit', () => --left || process.exit(0));
          w.process.kill('SIGTERM');
        }
      });
      return;
    }
  }
  if (v.native) return serveNative(v, port, pgPort);
  const noDelay = v.noDelay ?? true;
  const hwm = v.hwm ? { highWaterMark: v.hwm } : {};
  const server = net.createServer({ noDelay, pauseOnConnect: Boolean(v.onread), ...hwm }, (client) => {
    const close = () => (client.destroy(), backend.destroy());
    let backend;
    if (!v.onread) {
      backend = net.connect({ port: pgPort, host: '127.0.0.1', noDelay, ...hwm });
      v.relay(client, backend);
    } else {
      const f = v.frames ? frames() : {};
      const toClient = { dst: null, pending: 0 };
      const toBackend = { dst: null, pending: 0 };
      const options = v.direct ? directOptions : v.underWrite ? underWriteOptions : onreadOptions;
      backend = net.connect({ port: pgPort, host: '127.0.0.1', noDelay, onread: options(toClient, f.server) });
      const handle = client._handle;
      client._handle = null;
      client.destroy();
      client = new net.Socket({ handle, onread: options(toBackend, f.client) });
      // A direct write that went async: its completion resumes the socket that relayed it.
      toClient.complete = function (status) { if (status < 0) return close(); if (--toClient.pending === 0) backend.resume(); };
      toBackend.complete = function (status) { if (status < 0) return close(); if (--toBackend.pending === 0) client.resume(); };
      toClient.written = function (err) { if (err) return close(); if (toClient.writing) toClient.doneAtOnce = true; else backend.resume(); };
      toBackend.written = function (err) { if (err) return close(); if (toBackend.writing) toBackend.doneAtOnce = true; else client.resume(); };
      client.setNoDelay(true);
      toClient.dst = client;
      toBackend.dst = backend;
      client.on('drain', () => backend.resume());
      backend.on('drain', () => client.resume());
    }
    for (const s of [client, backend]) {
      s.on('error', close);
      s.on('close', close);
    }
  });
  server.listen(port, '127.0.0.1');
}

/** HAProxy in the foreground as this process's child, gone with it. */
function serveHaproxy(port, pgPort) {
  const { spawn } = require('node:child_process');
  const { writeFileSync } = require('node:fs');
  const cfg = require('node:path').join(require('node:os').tmpdir(), `relay-variants-haproxy-${port}.cfg`);
  writeFileSync(cfg, ['global', '  maxconn 4000', 'defaults', '  mode tcp', '  timeout connect 2s', '  timeout client 1h', '  timeout server 1h',
    'listen pg', `  bind 127.0.0.1:${port}`, `  server pg1 127.0.0.1:${pgPort}`, ''].join('\n'));
  const haproxy = spawn('haproxy', ['-db', '-f', cfg], { stdio: 'inherit' });
  haproxy.on('error', (err) => (console.error(`haproxy: ${err.message}`), process.exit(1)));
  process.on('SIGTERM', () => {
    haproxy.kill('SIGKILL');
    require('node:fs').rmSync(cfg, { force: true });
    process.exit(0);
  });
}

// ---- the driver -----------------------------------------------------------------------------

async function drive() {
  const { execFileSync } = require('node:child_process');
  const path = require('node:path');
  const { PgCluster } = require('../dist/harness/cluster');
  const { findPgBinDir } = require('../dist/harness/binaries');
  const { treeCpuSeconds: cpuSeconds } = require('./lib/perf-proc');
  const { findProgram } = require('./lib/perf-targets');
  const { makeCertificate } = require('./lib/perf-tls');
  const seconds = Number(opts.seconds ?? 10);
  const rounds = Number(opts.rounds ?? 3);
  const clientCounts = (opts.clients ?? '8').split(',');
  const unknown = (opts.only ?? '').split(',').filter((name) => name && !VARIANTS[name]);
  if (unknown.length) throw new Error(`unknown variant(s) ${unknown.join(', ')}; known: ${Object.keys(VARIANTS).join(', ')}`);
  const names = (opts.only ? opts.only.split(',') : Object.keys(VARIANTS)).filter((name) => {
    if (VARIANTS[name].native) {
      if (require('node:fs').existsSync(NATIVE_ADDON)) return true;
      console.log(`${name}: addon not built (${NATIVE_BUILD}), skipped`);
      return false;
    }
    if (VARIANTS[name].external === 'pgbouncer' && findProgram('pgbouncer') === undefined) {
      console.log('pgbouncer tls: not installed (apt-get install pgbouncer), skipped');
      return false;
    }
    if (VARIANTS[name].external !== 'haproxy') return true;
    try {
      execFileSync('haproxy', ['-v'], { stdio: 'ignore' });
      return true;
    } catch {
      console.log('haproxy: not installed (apt-get install haproxy), skipped');
      return false;
    }
  });
  const bin = findPgBinDir();
  const { mkdtempSync, rmSync, chmodSync } = require('node:fs');
  const dir = mkdtempSync(path.join(require('node:os').tmpdir(), 'relay-variants-'));
  chmodSync(dir, 0o755); // PgBouncer runs as postgres when we are root and reads its config here
  const cert = names.some((n) => VARIANTS[n].tls) ? makeCertificate(dir) : undefined;
  if (cert?.missing) throw new Error(cert.missing);
  const cluster = await PgCluster.create({ replicas: 0 });
  const key = (name, clients) => (clientCounts.length > 1 ? `${name} -c ${clients}` : name);
  const results = new Map(clientCounts.flatMap((c) => names.map((n) => [key(n, c), []])));
  try {
    const pg = ['-h', '127.0.0.1', '-U', 'postgres'];
    execFileSync(path.join(bin, 'pgbench'), ['-i', '-q', '-s', '10', ...pg, '-p', String(cluster.primary.port), 'postgres'], { stdio: 'ignore' });
    for (let round = 1; round <= rounds; round++) {
      for (const clients of clientCounts) for (const name of round % 2 ? names : [...names].reverse()) {
        const { port, proc, stop } = await startVariant(name, cluster.primary.port, dir, cert);
        let out, cpu;
        try {
          await new Promise((r) => setTimeout(r, 800)); // every worker of a multi-process variant listening too
          const t0 = cpuSeconds(proc.pid);
          const env = { ...process.env, PGSSLMODE: VARIANTS[name].tls ? 'require' : 'prefer' };
          out = execFileSync(path.join(bin, 'pgbench'), ['-n', '-S', '-c', clients, '-j', '2', '-T', String(seconds), ...pg, '-p', String(port), 'postgres'], { encoding: 'utf8', env });
          cpu = cpuSeconds(proc.pid) - t0;
        } finally {
          await stop(); // a failed pgbench must not leave the variant running
        }
        const tps = Number(/tps = ([\d.]+)/.exec(out)[1]);
        results.get(key(name, clients)).push({ tps, us: (cpu * 1e6) / (tps * seconds) });
        console.log(`round ${round} ${key(name, clients).padEnd(16)} ${tps.toFixed(0).padStart(7)} tps ${((cpu * 1e6) / (tps * seconds)).toFixed(1).padStart(6)} µs CPU/txn`);
      }
    }
  } finally {
    await cluster.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  if (names.includes('pgbouncer tls')) {
    for (const c of clientCounts) {
      const ref = median(results.get(key('pgbouncer tls', c)).map((r) => r.tps));
      const ratios = names.filter((n) => VARIANTS[n].tls && n !== 'pgbouncer tls').map((n) => `${n} ${(median(results.get(key(n, c)).map((r) => r.tps)) / ref).toFixed(2)}×`);
      console.log(`-c ${c}, TPS / PgBouncer's (TLS): ${ratios.join(', ')}`);
    }
  }
  console.log(`\n| variant | TPS (median of ${rounds}) | relay CPU per transaction (median) |\n|---|--:|--:|`);
  for (const [name, rs] of results) console.log(`| ${name} | ${median(rs.map((r) => r.tps)).toFixed(0)} | ${median(rs.map((r) => r.us)).toFixed(1)} µs |`);
  // Against HAProxy, when it ran: TPS ratio of the medians per client count.
  if (names.includes('haproxy')) {
    for (const c of clientCounts) {
      const ref = median(results.get(key('haproxy', c)).map((r) => r.tps));
      const ratios = names.filter((n) => n !== 'haproxy').map((n) => `${n} ${(median(results.get(key(n, c)).map((r) => r.tps)) / ref).toFixed(2)}×`);
      console.log(`-c ${c}, TPS / HAProxy's: ${ratios.join(', ')}`);
    }
  }
}

/**
 * One variant listening: {port, proc (whose process tree's CPU is the relay's), stop()}. Our own
 * variants run as `--serve` children; pgwarden and PgBouncer as bench/run starts them.
 */
async function startVariant(name, pgPort, dir, cert) {
  const { spawn } = require('node:child_process');
  const { freePort } = require('../dist/harness/ports');
  const { waitForPort } = require('./lib/perf-proc');
  const { startPgwarden, startPgbouncer } = require('./lib/perf-targets');
  const v = VARIANTS[name];
  if (v.external === 'pgwarden' || v.external === 'pgbouncer') {
    const t = v.external === 'pgwarden' ? await startPgwarden(dir, [{ name: 'pg1', port: pgPort }], { tls: cert }) : await startPgbouncer(dir, pgPort, { tls: cert });
    return { port: t.port, proc: t.server, stop: () => t.server.stop() };
  }
  const port = await freePort();
  const env = cert ? { ...process.env, RELAY_TLS_CERT: cert.certFile, RELAY_TLS_KEY: cert.keyFile } : process.env;
  const proc = spawn(process.execPath, [__filename, '--serve', name, String(port), String(pgPort)], { stdio: 'inherit', env });
  await waitForPort(port);
  return { port, proc, stop: () => (proc.kill('SIGTERM'), new Promise((r) => proc.once('exit', r))) };
}

if (opts.serve) serve(opts.serve, Number(process.argv[4]), Number(process.argv[5]));
else void drive();
