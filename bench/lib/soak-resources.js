// What bench/soak reads from pgwarden (GET /debug/resources: after a forced full collection) and
// the tolerance within which it must come back after each fault. Measured with the load paused
// (no short-lived session in flight, every long-lived one connected), so the session count is
// known exactly and must match; the rest may differ by a little: a health check reconnecting,
// a timer of a check in progress, the allocator keeping a few pages.
'use strict';
const { sleep } = require('./failover-procs');

const MiB = 1024 * 1024;

/** After a fault, compared with the level before it. */
const TOLERANCE = {
  heapBytes: 8 * MiB,
  rssBytes: 64 * MiB,
  /** Handles and descriptors: ± this many, plus 1 % of the level (10,000 idle sessions hold 20,000). */
  handles: 16,
  fds: 16,
  relative: 0.01,
};

/** At the end, compared with the first level (after the warm-up): a slow leak adds up here. */
const FINAL_TOLERANCE = { ...TOLERANCE, heapBytes: 16 * MiB, rssBytes: 96 * MiB };

function compact(r, t = Date.now()) {
  const handles = Object.values(r.resources).reduce((a, b) => a + b, 0);
  return {
    t,
    rss: r.rssBytes,
    heap: r.heapUsedBytes,
    handles,
    timers: r.resources.Timeout ?? 0,
    sockets: r.resources.TCPSocketWrap ?? 0,
    fds: r.openFds ?? 0,
    sessions: r.sessions,
    queued: r.queued,
    backends: r.backends,
    byType: r.resources,
  };
}

async function sample(pg) {
  return compact(await pg.resources());
}

function delta(now, before) {
  return {
    rss: now.rss - before.rss,
    heap: now.heap - before.heap,
    handles: now.handles - before.handles,
    timers: now.timers - before.timers,
    sockets: now.sockets - before.sockets,
    fds: now.fds - before.fds,
    sessions: now.sessions - before.sessions,
    backends: now.backends - before.backends,
  };
}

/** Undefined when `now` is back within `tol` of `before`, else what is still out. */
function outOfTolerance(now, before, tol = TOLERANCE) {
  const d = delta(now, before);
  const out = [];
  if (d.heap > tol.heapBytes) out.push(`heap +${(d.heap / MiB).toFixed(1)} MiB`);
  if (d.rss > tol.rssBytes) out.push(`RSS +${(d.rss / MiB).toFixed(1)} MiB`);
  const allowed = (level, abs) => abs + Math.ceil(level * tol.relative);
  if (Math.abs(d.handles) > allowed(before.handles, tol.handles)) out.push(`handles ${d.handles > 0 ? '+' : ''}${d.handles}`);
  if (Math.abs(d.fds) > allowed(before.fds, tol.fds)) out.push(`fds ${d.fds > 0 ? '+' : ''}${d.fds}`);
  if (d.sessions !== 0) out.push(`sessions ${d.sessions > 0 ? '+' : ''}${d.sessions}`);
  if (now.queued !== 0) out.push(`${now.queued} queued`);
  if (d.backends !== 0) out.push(`backends ${d.backends > 0 ? '+' : ''}${d.backends}`);
  return out.length ? out.join(', ') : undefined;
}

/**
 * With the load paused, samples until the process is back within tolerance of `before` or the
 * deadline passes. Returns { back, sample, delta, waitedMs, out }.
 */
async function waitBack({ pg, load, before, tol = TOLERANCE, timeoutMs = 30_000 }) {
  const started = Date.now();
  await load.pause();
  try {
    let now;
    let out;
    for (;;) {
      now = await sample(pg);
      out = outOfTolerance(now, before, tol);
      if (out === undefined || Date.now() - started > timeoutMs) break;
      await sleep(500);
    }
    return { back: out === undefined, sample: now, delta: delta(now, before), waitedMs: Date.now() - started, out };
  } finally {
    load.resume();
  }
}

module.exports = { TOLERANCE, FINAL_TOLERANCE, MiB, sample, delta, outOfTolerance, waitBack };
