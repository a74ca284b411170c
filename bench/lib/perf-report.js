// Turns the raw runs of bench/run into a summary (medians, spread, ratios), Markdown tables,
// and the marked sections of bench/README.md. Pure except updateReadme, which edits the file.
'use strict';
const { existsSync, readFileSync, writeFileSync } = require('node:fs');

function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** Per workload and target: median TPS, min and max over rounds, median latency and proxy CPU, ratios to direct and to HAProxy. */
function summarise(runs, workloads, targets) {
  const summary = {};
  for (const w of workloads) {
    const row = {};
    for (const target of targets) {
      const mine = runs.filter((r) => r.workload === w.id && r.target === target);
      if (mine.length === 0) continue;
      const tps = mine.map((r) => r.tps);
      row[target] = {
        tps: median(tps),
        tpsMin: Math.min(...tps),
        tpsMax: Math.max(...tps),
        latencyMs: median(mine.map((r) => r.latencyMs)),
        proxyCpuPercent: median(mine.map((r) => r.proxyCpuPercent ?? NaN)),
        failed: mine.reduce((sum, r) => sum + (r.failed || 0), 0),
        rounds: mine.length,
      };
    }
    for (const target of Object.keys(row)) {
      row[target].vsDirect = row.direct ? row[target].tps / row.direct.tps : null;
      row[target].vsHaproxy = row.haproxy ? row[target].tps / row.haproxy.tps : null;
    }
    summary[w.id] = row;
  }
  return summary;
}

const num = (x, digits = 0) => (x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }));
const ratio = (x) => (x === null || x === undefined || !Number.isFinite(x) ? '–' : `${x.toFixed(2)}×`);
const mib = (bytes) => (bytes === null || bytes === undefined ? '–' : `${(bytes / 1048576).toFixed(1)} MiB`);

function throughputTable(result, workloads) {
  const lines = [
    '| workload | target | TPS (median) | TPS min–max | mean latency | proxy CPU | vs direct | vs HAProxy |',
    '|---|---|--:|--:|--:|--:|--:|--:|',
  ];
  for (const w of workloads) {
    for (const [target, s] of Object.entries(result.summary[w.id] ?? {})) {
      lines.push(
        `| ${w.label} | ${target} | ${num(s.tps)} | ${num(s.tpsMin)}–${num(s.tpsMax)} | ${num(s.latencyMs, 3)} ms | ` +
          `${target === 'direct' ? '–' : `${num(s.proxyCpuPercent)} %`} | ${ratio(s.vsDirect)} | ${ratio(s.vsHaproxy)} |`,
      );
    }
  }
  return lines.join('\n');
}

function memoryTable(result) {
  const lines = [
    '| target | idle sessions | RSS before | RSS with sessions | anonymous before → with | bytes per session (settled) | bytes per added session | bytes per session (1 s after) | note |',
    '|---|--:|--:|--:|--:|--:|--:|--:|---|',
  ];
  for (const m of result.memory) {
    if (m.skipped) {
      lines.push(`| ${m.target} | ${num(m.requested)} | – | – | – | – | – | – | skipped: ${m.skipped} |`);
      continue;
    }
    const note = m.established < m.requested ? `${num(m.requested)} asked; ${m.limitedBy}` : (m.note ?? '');
    const early = m.bytesPerSession1s === undefined ? '–' : num(m.bytesPerSession1s);
    const added = m.bytesPerSessionAdded === undefined ? '–' : num(m.bytesPerSessionAdded);
    const anon = m.anon === undefined ? '–' : `${mib(m.anonBefore)} → ${mib(m.anon)}`;
    lines.push(`| ${m.target} | ${num(m.established)} | ${mib(m.rssBefore)} | ${mib(m.rss)} | ${anon} | ${num(m.bytesPerSession)} | ${added} | ${early} | ${note} |`);
  }
  return lines.join('\n');
}

function healthTable(result) {
  const h = result.healthCheck;
  if (!h) return '_not measured_';
  const x = h.haproxy;
  return [
    '| proxy | backends | check | interval | window | CPU (% of one core) | CPU per check | checks/s | RSS |',
    '|---|--:|---|--:|--:|--:|--:|--:|--:|',
    `| pgwarden | ${h.backends} | ${h.check} | ${h.intervalMs} ms | ${num(h.wallSeconds, 1)} s | ${num(h.cpuPercent, 2)} % | ${num(h.cpuMsPerCheck, 3)} ms | ${num(h.checksPerSecond, 1)} | ${mib(h.rssBytes)} |`,
    x === undefined
      ? undefined
      : x.skipped
        ? `| haproxy | ${h.backends} | skipped: ${x.skipped} | | | | | | |`
        : `| haproxy | ${h.backends} | ${x.check} | ${h.intervalMs} ms | ${num(x.wallSeconds, 1)} s | ${num(x.cpuPercent, 2)} % | ${num(x.cpuMsPerCheck, 3)} ms | ${num(h.checksPerSecond, 1)} | ${mib(x.rssBytes)} |`,
  ]
    .filter((line) => line !== undefined)
    .join('\n');
}

function header(result) {
  const h = result.host;
  const skipped = result.skipped.length ? `\nSkipped: ${result.skipped.map((s) => `${s.target} (${s.reason})`).join('; ')}.` : '';
  return (
    `Run ${result.date} (\`bench/run${result.mode === 'quick' ? ' --quick' : ''}\`, results in \`${result.resultsDir ?? 'bench/results'}/${result.file}\`): ` +
    `${h.cpus} × ${h.cpuModel}, ${(h.memBytes / 2 ** 30).toFixed(0)} GiB, Linux ${h.kernel}, Node ${h.node}, PostgreSQL ${h.postgres}, ` +
    `${Object.entries(result.targets).filter(([, t]) => t.version).map(([n, t]) => `${n} ${t.version}`).join(', ')}; ` +
    `load average ${h.loadavgStart.map((x) => x.toFixed(2)).join(' ')} at the start.${skipped}`
  );
}

/** The three generated blocks, keyed by the README marker name. */
function renderSections(result, workloads) {
  const settings = result.settings;
  return {
    throughput:
      `${header(result)}\n\n` +
      `pgbench -j 2, ${settings.transactions ? `${settings.transactions} transactions per client` : `${settings.seconds} s`} per run, scale ${settings.scale}, ${settings.rounds} round(s) (targets interleaved; round 2 in reverse order).\n\n` +
      throughputTable(result, workloads),
    memory: `${header(result)}\n\n${memoryTable(result)}`,
    'health-check': `${header(result)}\n\n${healthTable(result)}`,
  };
}

/**
 * Replaces the text between `<!-- bench:NAME:start -->` and `<!-- bench:NAME:end -->` for each
 * block; a missing block is appended under its heading. Other sections are left as they are.
 */
function updateReadme(file, blocks, headings) {
  let text = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n';
  for (const [name, body] of Object.entries(blocks)) {
    const start = `<!-- bench:${name}:start -->`;
    const end = `<!-- bench:${name}:end -->`;
    const i = text.indexOf(start);
    const j = text.indexOf(end);
    const block = `${start}\n${body}\n${end}`;
    if (i >= 0 && j > i) text = text.slice(0, i) + block + text.slice(j + end.length);
    else text = `${text.trimEnd()}\n\n## ${headings[name]}\n\n${block}\n`;
  }
  writeFileSync(file, text);
}

module.exports = { median, summarise, renderSections, updateReadme };
