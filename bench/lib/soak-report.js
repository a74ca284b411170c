// bench/soak's output: the table per fault kind, the verdict lines, and an SVG of pgwarden's RSS,
// heap and handles over the run with a mark at every fault (hand-written SVG: no plotting
// dependency, any browser shows it).
'use strict';
const { MiB } = require('./soak-resources');

const COLORS = {
  'kill-primary': '#d62728',
  switchover: '#9467bd',
  'sigstop-replica': '#1f77b4',
  'flap-replica': '#17becf',
  reload: '#2ca02c',
  'drain-ready': '#ff7f0e',
};

function median(xs) {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
}

const mib = (b) => (b === undefined ? '–' : `${b >= 0 ? '+' : ''}${(b / MiB).toFixed(1)}`);
const signed = (n) => (n === undefined ? '–' : `${n > 0 ? '+' : ''}${n}`);
const secs = (ms) => (ms === undefined ? '–' : (ms / 1000).toFixed(1));

/** One row per fault kind: count, failed faults, recovery (median/max s), deltas (median/max), back within tolerance. */
function faultTable(faults, lostByKind = {}) {
  const kinds = [...new Set(faults.map((f) => f.kind))];
  const head = '| fault | count | errors | recover median / max (s) | RSS Δ median / max (MiB) | heap Δ median / max (MiB) | handles Δ median / max | fds Δ max | back within tolerance | writes lost |';
  const rows = [head, '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|'];
  for (const kind of kinds) {
    const fs = faults.filter((f) => f.kind === kind);
    const ok = fs.filter((f) => f.resources);
    const pick = (k) => ok.map((f) => f.resources.delta[k]);
    const maxAbs = (xs) => xs.reduce((m, x) => (Math.abs(x) > Math.abs(m) ? x : m), 0);
    rows.push(
      `| ${kind} | ${fs.length} | ${fs.filter((f) => f.error).length} | ${secs(median(fs.filter((f) => f.recoverMs !== undefined).map((f) => f.recoverMs)))} / ${secs(Math.max(0, ...fs.map((f) => f.recoverMs ?? 0)))} | ` +
        `${mib(median(pick('rss')))} / ${mib(Math.max(...pick('rss'), -Infinity) === -Infinity ? undefined : Math.max(...pick('rss')))} | ${mib(median(pick('heap')))} / ${mib(ok.length ? Math.max(...pick('heap')) : undefined)} | ` +
        `${signed(median(pick('handles')))} / ${signed(ok.length ? maxAbs(pick('handles')) : undefined)} | ${signed(ok.length ? maxAbs(pick('fds')) : undefined)} | ${ok.filter((f) => f.resources.back).length}/${fs.length} | ${lostByKind[kind] ?? 0} |`,
    );
  }
  return rows.join('\n');
}

/** The plot: RSS and heap (MiB) above, handles and fds below, a vertical line per fault. */
function svgPlot({ samples, faults, title }) {
  const W = 1000;
  const H = 520;
  const left = 70;
  const right = 20;
  const panels = [
    { y: 40, h: 190, series: [['rss', '#d62728', 'RSS'], ['heap', '#1f77b4', 'heap used after GC']], unit: 'MiB', scale: 1 / MiB },
    { y: 290, h: 190, series: [['handles', '#2ca02c', 'active resources'], ['fds', '#ff7f0e', 'open fds'], ['sessions', '#7f7f7f', 'sessions']], unit: 'count', scale: 1 },
  ];
  if (samples.length === 0) return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="60"><text x="10" y="30">no samples</text></svg>\n`;
  const t0 = samples[0].t;
  const t1 = Math.max(samples[samples.length - 1].t, t0 + 1);
  const x = (t) => left + ((t - t0) / (t1 - t0)) * (W - left - right);
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`, `<rect width="${W}" height="${H}" fill="white"/>`];
  out.push(`<text x="${left}" y="18" font-size="14">${escape(title)}</text>`);
  for (const p of panels) {
    const values = p.series.flatMap(([k]) => samples.map((s) => s[k] * p.scale));
    const max = niceMax(Math.max(...values, 1));
    const y = (v) => p.y + p.h - (v / max) * p.h;
    out.push(`<rect x="${left}" y="${p.y}" width="${W - left - right}" height="${p.h}" fill="none" stroke="#ccc"/>`);
    for (let i = 0; i <= 4; i++) {
      const v = (max / 4) * i;
      out.push(`<line x1="${left}" x2="${W - right}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/><text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${fmtTick(v)}</text>`);
    }
    out.push(`<text x="14" y="${p.y + p.h / 2}" transform="rotate(-90 14 ${p.y + p.h / 2})" text-anchor="middle">${p.unit}</text>`);
    for (const f of faults) out.push(`<line x1="${x(f.at)}" x2="${x(f.at)}" y1="${p.y}" y2="${p.y + p.h}" stroke="${COLORS[f.kind] ?? '#999'}" stroke-opacity="0.35"/>`);
    p.series.forEach(([k, color, label], i) => {
      const pts = samples.map((s) => `${x(s.t).toFixed(1)},${y(s[k] * p.scale).toFixed(1)}`).join(' ');
      out.push(`<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${pts}"/>`);
      out.push(`<rect x="${left + 10 + i * 170}" y="${p.y + 6}" width="10" height="10" fill="${color}"/><text x="${left + 24 + i * 170}" y="${p.y + 15}">${label}</text>`);
    });
  }
  const minutes = (t1 - t0) / 60_000;
  for (let i = 0; i <= 6; i++) {
    const t = t0 + ((t1 - t0) / 6) * i;
    out.push(`<text x="${x(t)}" y="${H - 22}" text-anchor="middle">${((minutes / 6) * i).toFixed(minutes < 6 ? 1 : 0)} min</text>`);
  }
  Object.entries(COLORS).forEach(([kind, color], i) => out.push(`<rect x="${left + i * 150}" y="${H - 12}" width="10" height="3" fill="${color}"/><text x="${left + 14 + i * 150}" y="${H - 7}">${kind}</text>`));
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

function niceMax(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

const fmtTick = (v) => (v >= 1000 ? `${Math.round(v / 100) / 10}k` : `${Math.round(v * 10) / 10}`);
const escape = (s) => String(s).replace(/[<&>]/g, (c) => ({ '<': '&lt;', '&': '&amp;', '>': '&gt;' })[c]);

module.exports = { faultTable, svgPlot, median };
