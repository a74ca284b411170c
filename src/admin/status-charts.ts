// The status page's "Last 15 minutes" section: charts of GET /history (HistorySnapshot,
// admin/history-snapshot.ts) drawn as inline SVG by the page's own script, no library and no
// external asset. Sessions and queue depth per listener, client bytes per second, replication
// lag per replica in bytes and in seconds; failovers and switchovers are vertical markers on
// every chart (a <g data-event=…> with a <title>) and a list beside them; #history carries
// data-now, the proxy's time of the snapshot drawn last. The script runs after the page's main
// script in the same <script> element and uses its helpers ($, el, bytes, clock) and TIMEOUT_MS.
// Server strings reach the DOM through textContent/setAttribute only, as in the rest of the page.

export const CHART_CSS = `
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:12px}
.chart-box{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12);padding:8px 10px 6px;min-width:0}
.chart-box h3{font-size:13px;font-weight:600;margin:0 0 2px}
.chart{display:block;width:100%;height:auto}
.chart text{font:12px system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;fill:#5b6474}
.chart .grid{stroke:#e6e8ec;stroke-width:1}
.chart .series{fill:none;stroke-width:2;stroke-linejoin:round;stroke-linecap:round}
.chart .marker line{stroke-width:1.5;stroke-dasharray:4 3}
.legend{display:flex;flex-wrap:wrap;gap:2px 14px;font-size:12px;color:#1d2330;min-height:18px}
.legend .sw{display:inline-block;width:12px;height:3px;border-radius:2px;margin-right:5px;vertical-align:middle}
#history-markers{list-style:none;margin:0;padding:0;font-size:12px;max-height:200px;overflow-y:auto}
#history-markers li.empty{display:block;padding:10px 0}
#history-markers li{display:grid;grid-template-columns:10px 60px 1fr;gap:6px;align-items:baseline;padding:3px 0;border-bottom:1px solid #eef0f3}
#history-markers .mk{width:10px;height:10px;border-radius:2px;align-self:start;margin-top:3px}
`;

export const CHART_SECTION = `
  <div id="history">
    <h2 id="history-title">Last 15 minutes</h2>
    <div class="charts">
      <div class="chart-box"><h3>Sessions per listener</h3><div id="chart-sessions"></div></div>
      <div class="chart-box"><h3>Waiting sessions per listener (queue depth)</h3><div id="chart-queued"></div></div>
      <div class="chart-box"><h3>Client traffic, bytes per second</h3><div id="chart-bytes"></div></div>
      <div class="chart-box"><h3>Replication lag per replica, bytes</h3><div id="chart-lag-bytes"></div></div>
      <div class="chart-box"><h3>Replication lag per replica, seconds</h3><div id="chart-lag-seconds"></div></div>
      <div class="chart-box"><h3>Failovers and switchovers</h3><ul id="history-markers"></ul></div>
    </div>
  </div>
`;

// Plain ES2017, like the page's main script. No backticks and no dollar-brace inside.
export const CHART_SCRIPT = String.raw`
var SVGNS = 'http://www.w3.org/2000/svg';
var CW = 460, CH = 170, PL = 66, PR = 10, PT = 10, PB = 22;
var PALETTE = ['#2f6fde', '#1e9e5a', '#e8a317', '#8a3ffc', '#00838f', '#d81b60', '#6d4c41', '#5b6474'];
var MARKERS = {
  'primary.lost': { color: '#d93025', label: 'primary lost' },
  'primary.changed': { color: '#2f6fde', label: 'primary changed' },
  'failover.promoted': { color: '#8a3ffc', label: 'promotion' },
  'switchover.done': { color: '#1e9e5a', label: 'switchover done' },
  'backend.fenced': { color: '#111111', label: 'fenced' },
};
var seriesColors = {};
function colorOf(name) {
  if (!(name in seriesColors)) seriesColors[name] = PALETTE[Object.keys(seriesColors).length % PALETTE.length];
  return seriesColors[name];
}
function markerStyle(event) { return MARKERS[event] || { color: '#5b6474', label: event }; }
function svg(tag, attrs, text) {
  var e = document.createElementNS(SVGNS, tag);
  for (var k in attrs || {}) e.setAttribute(k, String(attrs[k]));
  if (text !== undefined) e.textContent = String(text);
  return e;
}
function count(n) { return String(Math.round(n)); }
function rate(n) { return bytes(n) + '/s'; }
function secs(n) { return (n < 10 ? n.toFixed(1) : String(Math.round(n))) + ' s'; }
function decimalTop(v, steps) {
  var p = Math.pow(10, Math.floor(Math.log10(v)));
  for (var i = 0; i < steps.length; i++) if (steps[i] * p >= v) return steps[i] * p;
  return 10 * p;
}
// Tops whose half is a round value: an integer for counts, a power-of-1024 unit for bytes.
function niceTop(max, kind) {
  if (kind === 'count') return max <= 2 ? 2 : decimalTop(max, [2, 4, 6, 8, 10]);
  if (kind === 'bytes') {
    if (max <= 1024) return 1024;
    var unit = Math.pow(1024, Math.floor(Math.log(max) / Math.log(1024)));
    var top = decimalTop(max / unit, [1, 2, 5, 10]);
    return (top > 1000 ? 1024 : top) * unit; // not 1000 kB: 1 MB
  }
  return max <= 1 ? 1 : decimalTop(max, [1, 2, 5, 10]);
}
function windowWords(ms) {
  return ms % 60000 === 0 ? (ms / 60000) + (ms === 60000 ? ' minute' : ' minutes') : Math.round(ms / 1000) + ' seconds';
}

var CHARTS = [
  { id: 'sessions', kind: 'count', fmt: count, values: function (p) { return p.sessions; } },
  { id: 'queued', kind: 'count', fmt: count, values: function (p) { return p.queued; } },
  { id: 'bytes', kind: 'bytes', fmt: rate, values: function (p) { return { 'from clients': p.bytesPerSecond.in, 'to clients': p.bytesPerSecond.out }; } },
  { id: 'lag-bytes', kind: 'bytes', fmt: bytes, values: function (p) { return pick(p.lag, 'bytes'); } },
  { id: 'lag-seconds', kind: 'seconds', fmt: secs, values: function (p) { return pick(p.lag, 'seconds'); } },
];
function pick(lag, field) {
  var out = {};
  for (var k in lag) if (typeof lag[k][field] === 'number') out[k] = lag[k][field];
  return out;
}

function drawChart(spec, h) {
  var from = h.now - h.windowMs, pw = CW - PL - PR, ph = CH - PT - PB;
  var x = function (t) { return PL + ((t - from) / h.windowMs) * pw; };
  var rows = h.points.filter(function (p) { return p.t >= from; }).map(function (p) { return { t: p.t, v: spec.values(p) || {} }; });
  var names = {}, max = 0;
  rows.forEach(function (r) {
    for (var k in r.v) if (typeof r.v[k] === 'number') { names[k] = true; max = Math.max(max, r.v[k]); }
  });
  var keys = Object.keys(names).sort(), top = niceTop(max, spec.kind);
  var y = function (v) { return PT + (1 - v / top) * ph; };
  var s = svg('svg', { viewBox: '0 0 ' + CW + ' ' + CH, class: 'chart', 'data-chart': spec.id });
  [0, top / 2, top].forEach(function (v) {
    s.append(svg('line', { class: 'grid', x1: PL, x2: CW - PR, y1: y(v), y2: y(v) }));
    s.append(svg('text', { x: PL - 6, y: y(v) + 4, 'text-anchor': 'end' }, spec.fmt(v).replace('.0 ', ' ')));
  });
  for (var i = 0; i <= 3; i++) {
    var t = from + (i * h.windowMs) / 3;
    var label = clock(new Date(t).toISOString());
    if (h.windowMs >= 600000) label = label.slice(0, 5);
    s.append(svg('text', { x: x(t), y: CH - 6, 'text-anchor': i === 0 ? 'start' : i === 3 ? 'end' : 'middle' }, label));
  }
  if (!rows.length) s.append(svg('text', { x: PL + pw / 2, y: PT + ph / 2, 'text-anchor': 'middle' }, 'collecting: a sample every ' + h.intervalMs / 1000 + ' s'));
  keys.forEach(function (k) {
    // A series breaks where it has no value (a replica down) or samples are missing.
    var segment = [], last = null;
    var flush = function () {
      if (segment.length === 1) s.append(svg('circle', { class: 'series', cx: segment[0][0], cy: segment[0][1], r: 2, fill: colorOf(k), 'data-series': k }));
      else if (segment.length > 1) s.append(svg('polyline', { class: 'series', stroke: colorOf(k), 'data-series': k, points: segment.map(function (q) { return q[0].toFixed(1) + ',' + q[1].toFixed(1); }).join(' ') }));
      segment = [];
    };
    rows.forEach(function (r) {
      var v = r.v[k];
      if (typeof v !== 'number' || (last !== null && r.t - last > 2.5 * h.intervalMs)) flush();
      if (typeof v === 'number') { segment.push([x(r.t), y(v)]); last = r.t; }
    });
    flush();
  });
  h.markers.forEach(function (m) {
    if (m.t < from) return;
    var st = markerStyle(m.event), mx = x(Math.min(m.t, h.now));
    var g = svg('g', { class: 'marker', 'data-event': m.event, 'data-t': m.t });
    g.append(svg('title', null, clock(new Date(m.t).toISOString()) + ' ' + st.label + ': ' + m.message));
    g.append(svg('line', { x1: mx, x2: mx, y1: PT, y2: PT + ph, stroke: st.color }));
    g.append(svg('path', { d: 'M' + (mx - 5) + ' ' + (PT - 2) + 'h10l-5 7z', fill: st.color }));
    s.append(g);
  });
  var legend = el('div', 'legend');
  keys.forEach(function (k) {
    var latest = rows.length ? rows[rows.length - 1].v[k] : undefined;
    var item = el('span', null, null, { 'data-series': k });
    var sw = el('span', 'sw');
    sw.style.background = colorOf(k);
    item.append(sw, el('span', null, k + (typeof latest === 'number' ? ' ' + spec.fmt(latest) : ' \u2014')));
    legend.append(item);
  });
  $('chart-' + spec.id).replaceChildren(s, legend);
}

function drawMarkerList(h) {
  var ul = $('history-markers');
  ul.replaceChildren();
  var from = h.now - h.windowMs;
  h.markers.filter(function (m) { return m.t >= from; }).reverse().forEach(function (m) {
    var st = markerStyle(m.event), dot = el('span', 'mk');
    dot.style.background = st.color;
    var text = el('span', null, null);
    text.append(el('b', null, st.label), document.createTextNode(' ' + m.message));
    var li = el('li', null, null, { 'data-marker': m.event });
    li.append(dot, el('span', 'time', clock(new Date(m.t).toISOString())), text);
    ul.append(li);
  });
  if (!ul.children.length) ul.append(el('li', 'empty', 'none in the last ' + windowWords(h.windowMs)));
}

function drawHistory(h) {
  $('history-title').textContent = 'Last ' + windowWords(h.windowMs);
  $('history').setAttribute('data-now', h.now);
  CHARTS.forEach(function (c) { drawChart(c, h); });
  drawMarkerList(h);
}

// The page's main poll reports connection problems; this one only retries.
function pollHistory() {
  var next = 5000, ctl = new AbortController();
  var timer = setTimeout(function () { ctl.abort(); }, TIMEOUT_MS);
  fetch('/history', { cache: 'no-store', signal: ctl.signal, headers: { accept: 'application/json' } })
    .then(function (r) { if (!r.ok) throw new Error('HTTP ' + r.status); return r.json(); })
    .then(function (h) { next = Math.min(5000, Math.max(1000, h.intervalMs)); drawHistory(h); }, function () {})
    .finally(function () { clearTimeout(timer); setTimeout(pollHistory, next); });
}
pollHistory();
`;
