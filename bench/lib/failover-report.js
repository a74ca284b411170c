// The numbers and the write-up shared by the failover benchmarks (bench/failover.js,
// bench/failover-coordinated.js): medians and nearest-rank percentiles of the trials, the
// machine a run was made on, and the replacement of one "## …" section of bench/README.md, so
// that a rerun replaces its own section and leaves every other one as it was.
'use strict';
const { execFileSync } = require('node:child_process');
const { existsSync, readFileSync, writeFileSync } = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { findPgBinDir } = require('../../dist/harness/binaries');

/** Median; of an even number of values, the mean of the two middle ones (rounded). */
function median(xs) {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : Math.round((s[mid - 1] + s[mid]) / 2);
}

// Nearest rank: the smallest value with at least p of the values at or below it.
function percentile(xs, p) {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil(p * s.length) - 1)];
}

/** Median, p90, min and max of the numbers among `xs` (anything else is left out). */
function stats(xs) {
  const n = xs.filter((x) => typeof x === 'number');
  return { median: median(n), p90: percentile(n, 0.9), min: n.length ? Math.min(...n) : undefined, max: n.length ? Math.max(...n) : undefined };
}

function countBy(items) {
  const counts = {};
  for (const item of items) counts[item] = (counts[item] ?? 0) + 1;
  return counts;
}

function fmt(x) {
  return x === undefined ? '-' : String(x);
}

/** CPUs, memory, Node, PostgreSQL, kernel and the load average now; `extra` (program versions) after PostgreSQL. */
function machineInfo(extra = {}) {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  let pgVersion = 'unknown';
  try {
    pgVersion = execFileSync(path.join(findPgBinDir(), 'postgres'), ['--version']).toString().trim();
  } catch {
    // reported as unknown
  }
  return {
    nproc: os.availableParallelism(),
    cpu,
    memoryGiB: Number((os.totalmem() / 2 ** 30).toFixed(1)),
    node: process.version,
    postgres: pgVersion,
    ...extra,
    kernel: os.release(),
    loadBefore: os.loadavg().map((l) => l.toFixed(2)),
  };
}

/**
 * Puts `section` (starting with its own `heading` line, e.g. "## Failover") into `file`: in place
 * of the section under exactly that heading, up to the next "## ", or at the end when there is
 * none yet.
 */
function replaceReadmeSection(file, heading, section) {
  const old = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n';
  const escaped = heading.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const start = old.search(new RegExp(`^${escaped}[ \\t]*$`, 'm'));
  let next;
  if (start === -1) next = `${old.trimEnd()}\n\n${section}`;
  else {
    const rest = old.slice(start + 1);
    const after = rest.search(/^## /m);
    next = `${old.slice(0, start)}${section}${after === -1 ? '' : `\n${rest.slice(after)}`}`;
  }
  writeFileSync(file, next);
}

module.exports = { median, percentile, stats, countBy, fmt, machineInfo, replaceReadmeSection };
