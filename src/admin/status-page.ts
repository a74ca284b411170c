// The live status page served at GET / of the admin port: one self-contained HTML document
// (inline CSS and JS, no external assets, fonts or CDNs, so it works on an air-gapped host)
// that polls /status (StatusSnapshot, src/routing/status-snapshot.ts) every second and draws it.
// Server strings reach the DOM only through textContent/setAttribute, never innerHTML, so a
// backend or message containing markup is shown as text. Cards carry data-backend,
// data-state and data-admin-state for tests and scripts; timeline rows carry data-event; the
// Cluster section (only when this instance coordinates through etcd) carries data-leader and
// data-epoch, its member rows data-member, data-alive, data-lagging and data-leader. The
// "Last 15 minutes" charts are in status-charts.ts.
import { CHART_CSS, CHART_SCRIPT, CHART_SECTION } from './status-charts';

export function renderStatusPage(): string {
  return PAGE;
}

const CSS = `
*{box-sizing:border-box}
body{margin:0;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;background:#eef0f3;color:#1d2330}
header{display:flex;gap:24px;align-items:baseline;padding:10px 20px;background:#1d2330;color:#e8eaef}
header .brand{font-size:20px;font-weight:700;letter-spacing:.5px}
header .muted{color:#9aa3b2}
header b{color:#fff}
#updated{margin-left:auto;font-size:12px}
.banner{padding:10px 20px;font-weight:700;color:#fff}
.banner.danger{background:#c62828;font-size:16px}
.banner.warn{background:#b26a00}
main{padding:12px 20px 20px}
main.stale{opacity:.55}
h2{font-size:13px;text-transform:uppercase;letter-spacing:.8px;color:#5b6474;margin:14px 0 8px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(270px,1fr));gap:12px}
.card{background:#fff;border-radius:8px;border-top:6px solid var(--st);box-shadow:0 1px 3px rgba(0,0,0,.12);overflow:hidden}
.st-up{--st:#1e9e5a;--tint:#f2fbf5}.st-down{--st:#d93025;--tint:#fdf0ef}
.st-init{--st:#8a8f98;--tint:#f5f5f6}.st-transitional{--st:#e8a317;--tint:#fff8e6}
.card-head{display:flex;align-items:center;gap:6px;padding:8px 12px;background:var(--tint)}
.card.fenced{border-top:0}
.card.fenced::before{content:"";display:block;height:12px;background:repeating-linear-gradient(45deg,#111 0 10px,#c62828 10px 20px)}
.adm-drain{outline:3px solid #2f6fde;outline-offset:2px}
.adm-maint{outline:3px dashed #8a3ffc;outline-offset:2px}
.name{font-size:17px;font-weight:700;margin-right:auto;overflow-wrap:anywhere}
.pill{font-size:11px;font-weight:700;padding:2px 7px;border-radius:10px;color:#fff;background:#5b6474;white-space:nowrap}
.pill.state{background:var(--st)}
.pill.primary{background:#1d2330}.pill.drain{background:#2f6fde}.pill.maint{background:#8a3ffc}
.pill.fenced{background:#000;border:1px solid #c62828}.pill.backup{background:#8a8f98}
.addr{font:12px ui-monospace,Menlo,Consolas,monospace;color:#5b6474;padding:2px 12px 0}
dl{display:grid;grid-template-columns:86px 1fr;gap:3px 8px;margin:6px 12px 10px}
dt{color:#5b6474}dd{margin:0;overflow-wrap:anywhere}
.ok{color:#1e7d47}.bad{color:#c62828;font-weight:600}.sub{color:#5b6474;font-size:12px;font-weight:400}
.cols{display:grid;grid-template-columns:minmax(0,1.15fr) minmax(0,1fr);gap:20px}
table{width:100%;border-collapse:collapse;background:#fff;border-radius:8px;overflow:hidden;box-shadow:0 1px 3px rgba(0,0,0,.12)}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #e6e8ec;vertical-align:top}
th{font-size:12px;color:#5b6474;background:#f7f8fa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.box{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12);padding:10px 12px}
.meter{display:grid;grid-template-columns:150px 1fr 48px;gap:8px;align-items:center;margin:4px 0}
.bar{height:10px;background:#e6e8ec;border-radius:5px;overflow:hidden}
.bar span{display:block;height:100%;background:#1e9e5a}
.bar span.hi{background:#e8a317}.bar span.crit{background:#d93025}
#timeline{list-style:none;margin:0;padding:0;max-height:460px;overflow-y:auto}
#timeline li{display:grid;grid-template-columns:64px 10px 150px 1fr;gap:8px;align-items:baseline;padding:5px 12px;border-bottom:1px solid #eef0f3}
.dot{width:10px;height:10px;border-radius:50%;background:#1e9e5a;align-self:start;margin-top:5px}
.lvl-warn .dot{background:#e8a317}.lvl-error .dot{background:#d93025}
.lvl-error{background:#fdf0ef}
.ev{font:12px ui-monospace,Menlo,Consolas,monospace;font-weight:600;overflow-wrap:anywhere}
.time{font:12px ui-monospace,Menlo,Consolas,monospace;color:#5b6474}
.empty{color:#5b6474;padding:10px 12px}
#cluster-section table{align-self:start}
`;

// Plain ES2017 for any browser; String.raw keeps backslashes literal. No backticks inside.
const SCRIPT = String.raw`
'use strict';
var POLL_MS = 1000, TIMEOUT_MS = 3000;
var lastOkAt = 0, timelineKey = '';
function $(id) { return document.getElementById(id); }
function el(tag, cls, text, attrs) {
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (var k in attrs || {}) e.setAttribute(k, String(attrs[k]));
  return e;
}
function bytes(n) {
  var units = ['B', 'kB', 'MB', 'GB', 'TB'], i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(Math.round(n))) + ' ' + units[i];
}
function span(ms) {
  var s = Math.max(0, Math.floor(ms / 1000)), m = Math.floor(s / 60), h = Math.floor(m / 60);
  if (s < 60) return s + 's';
  if (m < 60) return m + 'm ' + (s % 60) + 's';
  if (h < 24) return h + 'h ' + (m % 60) + 'm';
  return Math.floor(h / 24) + 'd ' + (h % 24) + 'h';
}
function ago(iso) { var t = Date.parse(iso); return isNaN(t) ? '?' : span(Date.now() - t) + ' ago'; }
function pad(n) { return (n < 10 ? '0' : '') + n; }
function clock(iso) {
  var d = new Date(iso);
  return isNaN(d.getTime()) ? String(iso) : pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
}
function row(dl, label, value, cls) {
  dl.append(el('dt', null, label));
  var dd = value instanceof Node ? value : el('dd', cls, value);
  dl.append(dd);
}

function renderHeader(s) {
  $('version').textContent = 'v' + s.version;
  $('uptime').textContent = span(Date.now() - Date.parse(s.startedAt));
  $('primary').textContent = s.primary || 'none';
  $('no-primary').hidden = !!s.primary;
  document.title = (s.primary ? '' : '\u26a0 NO PRIMARY \u2013 ') + 'pgwarden status';
}

function card(b) {
  var st = b.transitional ? 'transitional' : b.state;
  var c = el('section', 'card st-' + st + ' adm-' + b.adminState + (b.fenced ? ' fenced' : ''), null, {
    'data-backend': b.name, 'data-state': b.state, 'data-admin-state': b.adminState,
    'data-primary': b.isPrimary, 'data-fenced': b.fenced, 'data-transitional': b.transitional,
  });
  var head = el('div', 'card-head');
  head.append(el('span', 'name', b.name));
  if (b.isPrimary) head.append(el('span', 'pill primary', 'PRIMARY'));
  if (b.fenced) head.append(el('span', 'pill fenced', 'FENCED'));
  if (b.adminState !== 'ready') head.append(el('span', 'pill ' + b.adminState, b.adminState.toUpperCase()));
  if (b.backup) head.append(el('span', 'pill backup', 'BACKUP'));
  head.append(el('span', 'pill state', b.state.toUpperCase() + (b.transitional ? ' \u2192 ?' : ''), { title: b.transitional ? 'changing state (rise/fall in progress)' : 'health state' }));
  c.append(head, el('div', 'addr', b.host + ':' + b.port));
  var dl = el('dl');
  row(dl, 'role', b.role || 'unknown');
  var lag = [];
  if (b.lagBytes !== undefined && b.lagBytes !== null) lag.push(bytes(b.lagBytes));
  if (b.lagSeconds !== undefined && b.lagSeconds !== null) lag.push(b.lagSeconds.toFixed(1) + ' s');
  row(dl, 'lag', lag.length ? lag.join(' \u00b7 ') : '\u2014');
  row(dl, 'sessions', b.startupsInFlight ? b.sessions + ' + ' + b.startupsInFlight + ' starting' : b.sessions);
  row(dl, 'weight', b.effectiveWeight === b.weight ? b.weight : b.weight + ' \u2192 ' + b.effectiveWeight + ' effective');
  var lc = el('dd');
  if (!b.lastCheck) lc.textContent = 'not yet';
  else {
    var k = b.lastCheck;
    lc.append(k.ok ? el('span', 'ok', '\u2714 ok') : el('span', 'bad', '\u2718 ' + (k.layer || 'failed') + (k.message ? ': ' + k.message : '')));
    lc.append(el('div', 'sub', ago(k.at) + ' \u00b7 took ' + Math.round(k.durationMs) + ' ms'));
  }
  row(dl, 'last check', lc);
  if (b.agent) {
    var ag = el('dd', b.agent.reachable ? null : 'bad', b.agent.reachable ? '"' + b.agent.report + '"' : 'unreachable');
    ag.append(el('div', 'sub', ago(b.agent.at)));
    row(dl, 'agent', ag);
  }
  if (b.patroniDrain) head.append(el('span', 'pill drain', 'PATRONI DRAIN', { title: b.patroniDrain }));
  if (b.patroni) {
    var p = b.patroni;
    var flags = [];
    if (p.pendingRestart) flags.push('pending restart');
    if (p.noFailover) flags.push('nofailover');
    if (p.pause) flags.push('paused');
    if (p.scheduledRestart) flags.push('restart at ' + clock(p.scheduledRestart));
    var pd = el('dd', p.reachable ? null : 'bad', p.reachable
      ? (p.name || '?') + ': ' + (p.role || '?') + ' \u00b7 ' + (p.state || '?') + (p.timeline !== undefined ? ' \u00b7 timeline ' + p.timeline : '') + (flags.length ? ' \u00b7 ' + flags.join(', ') : '')
      : 'unreachable' + (p.error ? ': ' + p.error : ''));
    pd.append(el('div', 'sub', (b.patroniDrain ? 'draining: ' + b.patroniDrain + ' \u00b7 ' : '') + ago(p.at)));
    row(dl, 'patroni', pd);
  }
  c.append(dl);
  return c;
}

function renderListeners(ls) {
  var body = $('listeners');
  body.replaceChildren();
  ls.forEach(function (l) {
    var tr = el('tr', null, null, { 'data-listener': l.name });
    tr.append(el('td', null, l.name), el('td', 'time', l.bind), el('td', null, l.route), el('td', null, l.balance),
      el('td', 'num', l.sessions), el('td', 'num' + (l.queued ? ' bad' : ''), l.queued));
    var cand = el('td', l.hasCandidate ? 'ok' : 'bad', l.hasCandidate ? 'yes' : 'no');
    if (!l.hasCandidate && l.reason) cand.append(el('div', 'sub', l.reason));
    tr.append(cand);
    body.append(tr);
  });
  if (!ls.length) body.appendChild(el('tr')).appendChild(el('td', 'empty', 'no listeners', { colspan: 7 }));
}

function meter(label, pct) {
  var m = el('div', 'meter'), bar = el('div', 'bar'), fill = el('span', pct >= 90 ? 'crit' : pct >= 75 ? 'hi' : null);
  fill.style.width = Math.max(0, Math.min(100, pct)) + '%';
  bar.append(fill);
  m.append(el('span', null, label), bar, el('span', 'num', Math.round(pct) + '%'));
  return m;
}

function renderHost(h) {
  $('host-section').hidden = !h;
  if (!h) return;
  var box = $('host');
  box.replaceChildren(meter('cpu', h.cpuLoadPercent), meter('memory', h.memoryUsedPercent));
  h.disks.forEach(function (d) { box.append(meter('disk ' + d.mount, d.usedPercent)); });
  h.network.forEach(function (n) {
    box.append(el('div', 'sub', n.iface + ': \u2193 ' + bytes(n.rxBytesPerSec) + '/s  \u2191 ' + bytes(n.txBytesPerSec) + '/s'));
  });
  if (h.alerts.length) box.append(el('div', 'bad', 'alerts: ' + h.alerts.join(', ')));
  box.append(el('div', 'sub', 'sampled ' + ago(h.at)));
}

function renderCluster(c) {
  var section = $('cluster-section');
  section.hidden = !c;
  if (!c) return;
  section.setAttribute('data-leader', c.leader || '');
  section.setAttribute('data-epoch', c.epoch === undefined ? '' : c.epoch);
  var reachable = c.etcd.reachable;
  var alive = c.members.filter(function (m) { return m.alive; }).length;
  var dl = $('cluster');
  dl.replaceChildren();
  row(dl, 'instance', c.name + (c.isLeader ? ' (the leader)' : ''));
  row(dl, 'leader', c.leader || 'none', c.leader ? null : 'bad');
  row(dl, 'members', reachable ? alive + ' of ' + c.members.length + ' alive, quorum ' + c.quorum : 'unknown, quorum ' + c.quorum, reachable && alive < c.quorum ? 'bad' : null);
  row(dl, 'epoch', c.epoch === undefined ? 'no cluster state read yet' : c.epoch + ' · ' + (c.phase || '?') + (c.candidate && c.phase !== 'stable' ? ' → ' + c.candidate : ''));
  row(dl, 'primary', c.primary ? c.primary + (c.timeline !== undefined ? ' · timeline ' + c.timeline : '') : 'none agreed', c.primary ? null : 'bad');
  row(dl, 'fenced', c.fenced.length ? c.fenced.join(', ') : '—', c.fenced.length ? 'bad' : null);
  var etcd = el('dd', null, null, { 'data-etcd-reachable': reachable });
  etcd.append(reachable ? el('span', 'ok', '✔ reachable') : el('span', 'bad', '✘ unreachable (on loss: ' + c.etcd.onLoss + ')'));
  if (!reachable && c.etcd.lastError) etcd.append(el('div', 'bad', c.etcd.lastError, { 'data-etcd-error': '' }));
  etcd.append(el('div', 'sub', c.etcd.endpoints.join(', ')));
  row(dl, 'etcd', etcd);
  if (c.lastHandshakeMs !== undefined) row(dl, 'handshake', 'last one took ' + Math.round(c.lastHandshakeMs) + ' ms');

  var body = $('members');
  body.replaceChildren();
  c.members.forEach(function (m) {
    var tr = el('tr', null, null, { 'data-member': m.name, 'data-alive': reachable ? m.alive : 'unknown', 'data-lagging': m.lagging, 'data-leader': m.leader });
    // With etcd out of reach this instance cannot see the others: unknown, not gone.
    var state = !reachable ? el('td', 'sub', 'unknown') : m.alive ? el('td', 'ok', 'alive') : el('td', 'bad', 'gone');
    tr.append(el('td', null, m.name + (m.name === c.name ? ' (this)' : '')), state,
      el('td', 'num', m.ackEpoch === undefined ? '—' : m.ackEpoch),
      el('td', m.lagging ? 'bad' : null, m.lagging ? 'lagging' : '—'),
      el('td', null, m.votesDown ? 'yes' : '—'),
      el('td', null, m.leader ? 'LEADER' : ''));
    body.append(tr);
  });
}

function renderTimeline(events) {
  var key = events.length + '|' + (events.length ? JSON.stringify(events[events.length - 1]) : '');
  if (key === timelineKey) return;
  timelineKey = key;
  var ol = $('timeline');
  ol.replaceChildren();
  for (var i = events.length - 1; i >= 0; i--) {
    var e = events[i];
    var li = el('li', 'lvl-' + e.level, null, { 'data-event': e.event, 'data-event-backend': e.backend || '', 'data-level': e.level, title: e.time });
    li.append(el('span', 'time', clock(e.time)), el('span', 'dot'), el('span', 'ev', e.event), el('span', null, e.message));
    ol.append(li);
  }
  if (!events.length) ol.append(el('li', 'empty', 'no events yet'));
}

function render(s) {
  renderHeader(s);
  renderCluster(s.coordination);
  $('backends').replaceChildren.apply($('backends'), s.backends.map(card));
  renderListeners(s.listeners);
  renderHost(s.host);
  renderTimeline(s.events);
}

function setConnectionProblem(problem) {
  $('conn').hidden = !problem;
  $('main').classList.toggle('stale', !!problem);
  if (problem) $('conn').textContent = 'Cannot reach /status: ' + problem + (lastOkAt ? ' \u2013 showing data from ' + span(Date.now() - lastOkAt) + ' ago' : '');
  $('updated').textContent = lastOkAt ? 'updated ' + clock(new Date(lastOkAt).toISOString()) : 'loading\u2026';
}

function poll() {
  var ctl = new AbortController();
  var timer = setTimeout(function () { ctl.abort(); }, TIMEOUT_MS);
  fetch('/status', { cache: 'no-store', signal: ctl.signal, headers: { accept: 'application/json' } })
    .then(function (r) { if (!r.ok) throw new Error('HTTP ' + r.status); return r.json(); })
    .then(function (s) { lastOkAt = Date.now(); setConnectionProblem(null); render(s); },
      function (e) { setConnectionProblem(e && e.name === 'AbortError' ? 'no answer within ' + TIMEOUT_MS / 1000 + ' s' : String((e && e.message) || e)); })
    .finally(function () { clearTimeout(timer); setTimeout(poll, POLL_MS); });
}
poll();
`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<link rel="icon" href="data:,">
<title>pgwarden status</title>
<style>${CSS}${CHART_CSS}</style>
</head>
<body>
<header>
  <span class="brand">pgwarden</span><span class="muted" id="version"></span>
  <span class="muted">uptime <b id="uptime">\u2013</b></span>
  <span class="muted">primary <b id="primary">\u2013</b></span>
  <span class="muted" id="updated">loading\u2026</span>
</header>
<div class="banner danger" id="no-primary" hidden>NO PRIMARY \u2013 no backend is accepting writes; write sessions wait in the queue or are refused</div>
<div class="banner warn" id="conn" hidden></div>
<main id="main">
  <div id="cluster-section" hidden>
    <h2>Cluster</h2>
    <div class="cols">
      <div class="box"><dl id="cluster"></dl></div>
      <table><thead><tr><th>member</th><th>alive</th><th>acknowledged epoch</th><th>lagging</th><th>votes primary down</th><th>leader</th></tr></thead>
      <tbody id="members"></tbody></table>
    </div>
  </div>
  <h2>Backends</h2>
  <div class="grid" id="backends"></div>
${CHART_SECTION}  <div class="cols">
    <div>
      <h2>Listeners</h2>
      <table><thead><tr><th>name</th><th>bind</th><th>route</th><th>balance</th><th>sessions</th><th>queued</th><th>candidate</th></tr></thead>
      <tbody id="listeners"></tbody></table>
      <div id="host-section" hidden><h2>Host</h2><div class="box" id="host"></div></div>
    </div>
    <div>
      <h2>Timeline <span class="sub">(newest first)</span></h2>
      <div class="box" style="padding:0"><ol id="timeline"></ol></div>
    </div>
  </div>
</main>
<script>${SCRIPT}${CHART_SCRIPT}</script>
</body>
</html>
`;
