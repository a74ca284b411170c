// The status page's Cluster section and its history charts, drawn by a real headless Chromium
// from fixed snapshots served by a real AdminServer (no PostgreSQL, no etcd: a coordinated
// snapshot cannot come from a single-instance run, and a fixed history pins what is drawn). test/integration/status-page.test.ts covers the rest of the page
// against a real cluster.
import t, { type Test } from 'tap';
import type { Page } from 'playwright-core';
import { AdminServer } from '../../src/admin/server';
import type { AdminController } from '../../src/admin/controller';
import type { HistoryPoint, HistorySnapshot } from '../../src/admin/history-snapshot';
import { renderStatusPage } from '../../src/admin/status-page';
import { Bus } from '../../src/events';
import { createLogger } from '../../src/logger';
import { Metrics } from '../../src/metrics/metrics';
import type { CoordinationStatus, StatusSnapshot } from '../../src/routing/status-snapshot';
import { chromiumMissing, launchChromium } from '../helpers/browser';
import { coordinationStatus } from '../helpers/coordination-status';

function snapshot(coordination?: CoordinationStatus): StatusSnapshot {
  return {
    version: '0.1.0',
    startedAt: new Date().toISOString(),
    primary: 'pg2',
    listeners: [{ name: 'rw', bind: '127.0.0.1:6432', route: 'primary', balance: 'roundrobin', fallback: 'none', sessions: 0, queued: 0, hasCandidate: true }],
    backends: [
      { name: 'pg2', host: '127.0.0.1', port: 5433, state: 'up', adminState: 'ready', fenced: false, transitional: false, role: 'primary', isPrimary: true, weight: 100, effectiveWeight: 100, backup: false, sessions: 0, startupsInFlight: 0 },
    ],
    events: [],
    ...(coordination ? { coordination } : {}),
  };
}

const COORDINATED: CoordinationStatus = coordinationStatus({ fenced: ['pg1'], lastHandshakeMs: 182 });

const missing = chromiumMissing();
if (missing) t.comment(`skipping the status page cluster test: ${missing}`);

t.test('the Cluster section shows the leader, epoch, primary, fenced servers, etcd and every member', { skip: missing ?? false }, async (t) => {
  let current = snapshot(COORDINATED);
  const opened = await open(t, { status: () => current });
  if (opened === null) return t.plan(0, 'chromium is not available'); // plan(0, why) = skip
  const { page, pageErrors } = opened;

  const section = page.locator('#cluster-section');
  await section.waitFor({ state: 'visible', timeout: 10_000 });
  t.equal(await section.getAttribute('data-leader'), 'b');
  t.equal(await section.getAttribute('data-epoch'), '4');
  const facts = await definitions(page);
  t.same(facts, {
    instance: 'a',
    leader: 'b',
    members: '2 of 3 alive, quorum 2',
    epoch: '4 · stable',
    primary: 'pg2 · timeline 2',
    fenced: 'pg1',
    etcd: '✔ reachable\nhttp://10.0.0.5:2379',
    handshake: 'last one took 182 ms',
  });
  t.same(await members(page), [
    { member: 'a', alive: 'true', lagging: 'true', leader: 'false', cells: ['a (this)', 'alive', '3', 'lagging', '—', ''] },
    { member: 'b', alive: 'true', lagging: 'false', leader: 'true', cells: ['b', 'alive', '4', '—', '—', 'LEADER'] },
    { member: 'c', alive: 'false', lagging: 'false', leader: 'false', cells: ['c', 'gone', '—', '—', '—', ''] },
  ]);

  // etcd out of reach: the error shows as text (markup and all), the members are unknown.
  const lastError = '<img src=x onerror="window.pwned=1"> deadline exceeded';
  current = snapshot({
    ...COORDINATED,
    leader: undefined,
    members: COORDINATED.members.map((m) => ({ ...m, alive: false, ackEpoch: undefined, lagging: false, leader: false })),
    etcd: { reachable: false, endpoints: ['http://10.0.0.5:2379'], lastError, onLoss: 'readonly' },
  });
  await until(async () => (await section.getAttribute('data-leader')) === '', 'the page shows the new snapshot');
  const lost = await definitions(page);
  t.equal(lost.leader, 'none');
  t.equal(lost.members, 'unknown, quorum 2');
  t.equal(lost.etcd, `✘ unreachable (on loss: readonly)\n${lastError}\nhttp://10.0.0.5:2379`, 'the last error, as text');
  t.equal(await page.locator('[data-etcd-error] img').count(), 0, 'no element made from the error');
  t.equal(await page.evaluate('window.pwned'), undefined, 'and no script ran');
  t.same((await members(page)).map((m) => [m.alive, m.cells[1]]), [['unknown', 'unknown'], ['unknown', 'unknown'], ['unknown', 'unknown']]);

  // An instance that does not coordinate has no Cluster section.
  current = snapshot();
  await section.waitFor({ state: 'hidden', timeout: 10_000 });
  t.pass('the section hides without coordination');
  t.same(pageErrors, [], 'no errors in the page console');
});

t.test('the charts draw a fixed history: a series per listener and replica, gaps, markers, markup as text', { skip: missing ?? false }, async (t) => {
  const now = Date.now();
  const at = (secondsAgo: number) => now - secondsAgo * 1000;
  const history: HistorySnapshot = {
    intervalMs: 5_000,
    windowMs: 900_000,
    now,
    points: [30, 25, 20, 15, 10, 5, 0].map((ago): HistoryPoint => ({
      t: at(ago),
      sessions: { rw: ago, ro: 3 },
      queued: { rw: ago === 15 ? 4 : 0, ro: 0 },
      bytesPerSecond: { in: 1_000, out: 250_000 },
      // pg2 is down for the two samples 15 s and 10 s ago: its line breaks there.
      lag: ago === 15 || ago === 10 ? { pg3: { bytes: 0, seconds: 0 } } : { pg2: { bytes: 4_096, seconds: 1.5 }, pg3: { bytes: 0, seconds: 0 } },
    })),
    markers: [
      { t: at(2_000), event: 'primary.changed', message: 'out of the window: not drawn' },
      { t: at(16), event: 'primary.lost', message: 'no primary: pg1 is down <img src=x onerror="window.pwned=1">' },
      { t: at(12), event: 'failover.promoted', message: 'promoted pg2' },
    ],
  };
  const opened = await open(t, { status: () => snapshot(), history: () => history });
  if (opened === null) return t.plan(0, 'chromium is not available');
  const { page, pageErrors } = opened;
  await page.locator('#history polyline').first().waitFor({ state: 'attached', timeout: 10_000 }); // a flat line has no height: never "visible"

  t.equal(await page.locator('#history-title').innerText(), 'LAST 15 MINUTES', 'titled by the window (h2 is upper-cased by CSS)');
  const series = (chart: string) => page.locator(`[data-chart="${chart}"] polyline`).evaluateAll((els) => els.map((e) => e.getAttribute('data-series')));
  t.same(await series('sessions'), ['ro', 'rw'], 'one line per listener');
  t.same(await series('bytes'), ['from clients', 'to clients']);
  t.same(await series('lag-bytes'), ['pg2', 'pg2', 'pg3'], 'pg2 breaks where it had no lag (down), pg3 is one line');
  const points = await page.locator('#history polyline').evaluateAll((els) => els.map((e) => (e.getAttribute('points') ?? '').split(' ').length));
  t.ok(points.every((n) => n >= 2), 'every line has points');
  t.equal(await page.locator('[data-chart="sessions"] [data-event="primary.lost"]').count(), 1, 'a primary.lost marker on the sessions chart');
  t.equal(await page.locator('#history svg [data-event="primary.lost"]').count(), 5, 'and on every chart');
  t.equal(await page.locator('#history svg [data-event="primary.changed"]').count(), 0, 'none for an event older than the window');
  t.match(await page.locator('#history svg [data-event="primary.lost"] title').first().textContent(), /primary lost: no primary: pg1 is down <img/);
  t.same(await page.locator('#history-markers li').evaluateAll((els) => els.map((e) => e.getAttribute('data-marker'))), ['failover.promoted', 'primary.lost'], 'the list, newest first');
  t.match(await page.locator('#history-markers li[data-marker="primary.lost"]').innerText(), /primary lost no primary: pg1 is down <img src=x/, 'the message as text');
  t.equal(await page.locator('#history img').count(), 0, 'no element made from a message');
  t.equal(await page.evaluate('window.pwned'), undefined, 'and no script ran');
  t.match(await page.locator('#chart-sessions .legend').innerText(), /ro 3\s+rw 0/, 'the legend shows the latest values');
  t.same(pageErrors, [], 'no errors in the page console');
});

/** An AdminServer for `controller` (an empty history unless given) and a Chromium page on it; null without Chromium. */
async function open(t: Test, controller: Pick<AdminController, 'status'> & Partial<AdminController>): Promise<{ page: Page; pageErrors: string[] } | null> {
  const browser = await launchChromium();
  if (browser === null) return null;
  t.teardown(() => browser.close());
  const full: AdminController = {
    history: () => ({ intervalMs: 5_000, windowMs: 900_000, now: Date.now(), points: [], markers: [] }),
    setAdminState: () => undefined,
    switchover: async (to) => ({ ok: false, to, error: 'not here' }),
    reload: async () => ({ ok: true }),
    ready: () => true,
    ...controller,
  };
  const metrics = new Metrics(new Bus(), full);
  t.teardown(() => metrics.close());
  const admin = new AdminServer({ host: '127.0.0.1', port: 0, controller: full, metrics, log: createLogger('silent'), statusPage: renderStatusPage });
  await admin.listen();
  t.teardown(() => admin.close());

  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const pageErrors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => pageErrors.push(`uncaught: ${e.message}`));
  await page.goto(`http://127.0.0.1:${admin.address().port}/`);
  return { page, pageErrors };
}

async function until(ok: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The Cluster facts, dt → dd text. */
async function definitions(page: Page): Promise<Record<string, string>> {
  const terms = await page.locator('#cluster dt').allInnerTexts();
  const values = await page.locator('#cluster dd').allInnerTexts();
  return Object.fromEntries(terms.map((term, i) => [term, values[i]]));
}

async function members(page: Page): Promise<{ member: string; alive: string; lagging: string; leader: string; cells: string[] }[]> {
  const out = [];
  for (const r of await page.locator('#members tr[data-member]').all()) {
    out.push({
      member: (await r.getAttribute('data-member')) ?? '',
      alive: (await r.getAttribute('data-alive')) ?? '',
      lagging: (await r.getAttribute('data-lagging')) ?? '',
      leader: (await r.getAttribute('data-leader')) ?? '',
      cells: await r.locator('td').allTextContents(),
    });
  }
  return out;
}
