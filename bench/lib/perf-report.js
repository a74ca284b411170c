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

/**
 * Per workload and target: median TPS, min and max over rounds, median latency, proxy CPU and
 * proxy CPU per transaction, and the TPS ratio to each of `references` (field name → target).
 */
function summarise(runs, workloads, targets, references = { vsDirect: 'direct', vsHaproxy: 'haproxy' }) {
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
        proxyCpuUsPerTransaction: median(mine.map((r) => (r.proxyCpuSeconds == null ? NaN : (r.proxyCpuSeconds * 1e6) / r.transactions))),
        failed: mine.reduce((sum, r) => sum + (r.failed || 0), 0),
        rounds: mine.length,
      };
    }
    for (const target of Object.keys(row)) {
      for (const [field, reference] of Object.entries(references)) row[target][field] = row[reference] ? row[target].tps / row[reference].tps : null;
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
    '| target | client | idle sessions | RSS before | RSS with sessions | anonymous before → with | bytes per session (settled) | bytes per added session | bytes per session (1 s after) | note |',
    '|---|---|--:|--:|--:|--:|--:|--:|--:|---|',
  ];
  for (const m of result.memory) {
    const client = m.clientTls ? 'TLS' : 'plain';
    if (m.skipped) {
      lines.push(`| ${m.target} | ${client} | ${num(m.requested)} | – | – | – | – | – | – | skipped: ${m.skipped} |`);
      continue;
    }
    const note = m.established < m.requested ? `${num(m.requested)} asked; ${m.limitedBy}` : (m.note ?? '');
    const early = m.bytesPerSession1s === undefined ? '–' : num(m.bytesPerSession1s);
    const added = m.bytesPerSessionAdded === undefined ? '–' : num(m.bytesPerSessionAdded);
    const anon = m.anon === undefined ? '–' : `${mib(m.anonBefore)} → ${mib(m.anon)}`;
    lines.push(`| ${m.target} | ${client} | ${num(m.established)} | ${mib(m.rssBefore)} | ${mib(m.rss)} | ${anon} | ${num(m.bytesPerSession)} | ${added} | ${early} | ${note} |`);
  }
  return lines.join('\n');
}

/** The TLS phase: the throughput table's columns with CPU per transaction, ratios to PgBouncer, and the target's verdicts. */
function tlsTable(result, workloads) {
  const t = result.tls;
  if (!t) return '_not measured_';
  const skipped = t.skipped.length ? `Skipped: ${t.skipped.map((s) => `${s.target} (${s.reason})`).join('; ')}.\n\n` : '';
  const negotiated = Object.entries(t.targets)
    .filter(([, x]) => x.protocol)
    .map(([name, x]) => `${name} ${x.protocol} ${x.cipher}`)
    .join('; ');
  const lines = [
    '| workload | target | TPS (median) | TPS min–max | mean latency | proxy CPU | proxy CPU per transaction | vs direct TLS | vs PgBouncer TLS |',
    '|---|---|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const w of workloads) {
    for (const [target, s] of Object.entries(t.summary[w.id] ?? {})) {
      const proxy = target !== 'direct';
      lines.push(
        `| ${w.label} | ${target} | ${num(s.tps)} | ${num(s.tpsMin)}–${num(s.tpsMax)} | ${num(s.latencyMs, 3)} ms | ` +
          `${proxy ? `${num(s.proxyCpuPercent)} %` : '–'} | ${proxy ? `${num(s.proxyCpuUsPerTransaction)} µs` : '–'} | ${ratio(s.vsDirect)} | ${ratio(s.vsPgbouncer)} |`,
      );
    }
  }
  const label = (id) => workloads.find((w) => w.id === id)?.label ?? id;
  const verdicts = Object.entries(t.target.verdicts)
    .map(([id, v]) => `${label(id)} ${v.ratio === null ? 'not measured' : `${ratio(v.ratio)}: ${v.met ? 'MET' : 'NOT MET'}`}`)
    .join('; ');
  return (
    `${skipped}Clients ${t.clients}; server leg ${t.serverLeg} for both proxies.${negotiated ? ` Negotiated: ${negotiated}.` : ''}\n\n` +
    `${lines.join('\n')}\n\n` +
    `Target: pgwarden ≥ ${t.target.ratio.toFixed(2)}× PgBouncer in the same run (select-only): ${verdicts || 'not measured'}.`
  );
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

/** The generated blocks, keyed by the README marker name. */
function renderSections(result, workloads, tlsWorkloads) {
  const settings = result.settings;
  return {
    throughput:
      `${header(result)}\n\n` +
      `pgbench -j 2, ${settings.transactions ? `${settings.transactions} transactions per client` : `${settings.seconds} s`} per run, scale ${settings.scale}, ${settings.rounds} round(s) (targets interleaved; round 2 in reverse order).\n\n` +
      throughputTable(result, workloads),
    memory: `${header(result)}\n\n${memoryTable(result)}`,
    'health-check': `${header(result)}\n\n${healthTable(result)}`,
    tls:
      `${header(result)}\n\n` +
      `pgbench -j 2, ${settings.transactions ? `${settings.transactions} transactions per client` : `${settings.seconds} s`} per run, scale ${settings.scale}, ${settings.rounds} round(s) (targets interleaved; round 2 in reverse order).\n\n` +
      tlsTable(result, tlsWorkloads),
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
