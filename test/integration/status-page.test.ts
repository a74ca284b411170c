// The status page on the admin port, in a real headless Chromium against a real cluster: it
// shows every backend and the primary, and when a server dies its card turns down and the
// timeline says so, without a reload and without a JavaScript error. Then the primary is killed
// and pgwarden promotes the last replica: the history charts, sampled every 250 ms over 20
// seconds here (5 s over 15 minutes in production), show the failover markers and the lines
// around them.
import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import t from 'tap';
import type { Page } from 'playwright-core';
import type { Client } from 'pg';
import { AdminServer } from '../../src/admin/server';
import { renderStatusPage } from '../../src/admin/status-page';
import { createLogger } from '../../src/logger';
import { Metrics } from '../../src/metrics/metrics';
import { freePort } from '../../src/harness/ports';
import { chromiumMissing, launchChromium } from '../helpers/browser';
import { startCluster } from '../helpers/cluster';
import { CHECK_USER, connect, startProxy, waitFor, waitForBackend } from '../helpers/proxy';

/** Screenshots land under tap's own output directory (git-ignored), kept after the run. */
const SCREENSHOT_DIR = resolve(__dirname, '../../.tap/screenshots');
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

const missing = chromiumMissing();
if (missing) t.comment(`skipping the status page test: ${missing}`);

t.test('status page follows a backend going down, then a failover on its charts', { skip: missing ?? false }, async (t) => {
  const browser = await launchChromium();
  if (browser === null) return t.plan(0, 'chromium is not available'); // plan(0, why) = skip
  t.teardown(() => browser.close());

  const cluster = await startCluster(t, { replicas: 2, checkUser: CHECK_USER });
  await cluster.query(cluster.nodes[0], 'grant execute on function pg_promote(boolean, integer) to pgwarden');
  await cluster.query(cluster.nodes[0], 'create table ticks (pad text)');
  await cluster.waitForReplication();
  const p = await startProxy(t, cluster, {
    failover: '  queue_timeout: 30s\n  queue_size: 100\n  mode: promote\n  promote_after: 1s',
    app: { history: { intervalMs: 250, windowMs: 20_000 } },
  });
  for (const n of cluster.nodes) await waitForBackend(p, n.name, 'up', 30_000);
  // Something to chart: writers (WAL, so some replication lag) and readers through both
  // listeners, and idle sessions on the replicas.
  const load = [traffic(p.rwPort, 2, "insert into ticks select repeat('x', 1000) from generate_series(1, 50)"), traffic(p.roPort, 2, "select repeat('x', 20000)")];
  const idle: Client[] = [];
  t.teardown(async () => {
    await Promise.all(load.map((l) => l.stop()));
    await Promise.all(idle.map((c) => c.end().catch(() => undefined)));
  });
  for (let i = 0; i < 4; i++) idle.push(await connect(p.roPort));

  const metrics = new Metrics(p.app.bus, p.app);
  t.teardown(() => metrics.close());
  const admin = new AdminServer({
    host: '127.0.0.1',
    port: await freePort(),
    controller: p.app,
    metrics,
    log: createLogger('silent'),
    statusPage: renderStatusPage,
  });
  await admin.listen();
  t.teardown(() => admin.close());

  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const pageErrors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => pageErrors.push(`uncaught: ${e.message}`));

  const response = await page.goto(`http://127.0.0.1:${admin.address().port}/`);
  t.equal(response?.status(), 200, 'GET / answers 200');
  t.match(response?.headers()['content-type'] ?? '', /^text\/html/, 'as HTML');

  await waitFor('three backend cards, all up', async () => (await cardStates(page)).filter((s) => s === 'up').length === 3);
  t.same((await cards(page)).map((c) => c.name).sort(), ['pg1', 'pg2', 'pg3'], 'one card per backend');
  const pg1 = page.locator('[data-backend="pg1"]');
  t.equal(await pg1.getAttribute('data-primary'), 'true', 'pg1 is marked primary');
  t.match(await pg1.innerText(), /PRIMARY/, 'with a PRIMARY badge');
  t.equal(await page.locator('#primary').innerText(), 'pg1', 'the header names the primary');
  t.equal(await page.locator('#no-primary').isVisible(), false, 'no NO PRIMARY banner');
  t.same(await page.locator('[data-backend]').evaluateAll((els) => els.map((e) => e.getAttribute('data-admin-state'))), ['ready', 'ready', 'ready'], 'all ready');
  t.equal(await page.locator('#listeners tr[data-listener]').count(), 2, 'both listeners listed');

  const pg2 = cluster.nodes.find((n) => n.name === 'pg2')!;
  await cluster.stop(pg2, 'immediate');
  await waitFor('pg2 card down', async () => (await page.locator('[data-backend="pg2"]').getAttribute('data-state')) === 'down', 30_000);
  const downEvent = page.locator('#timeline li[data-event="backend.down"][data-event-backend="pg2"]');
  await waitFor('backend.down for pg2 in the timeline', async () => (await downEvent.count()) > 0, 15_000);
  t.pass('pg2 card turned down and the timeline shows backend.down for pg2');
  t.match(await page.locator('[data-backend="pg2"]').innerText(), /DOWN/, 'the card says DOWN');
  t.same((await cards(page)).filter((c) => c.state === 'up').map((c) => c.name).sort(), ['pg1', 'pg3'], 'the others stay up');
  const times = await page.locator('#timeline li[data-event]').evaluateAll((els) => els.map((e) => Date.parse(e.getAttribute('title') ?? '')));
  t.ok(times.every((time, i) => i === 0 || time <= times[i - 1]), 'timeline is newest first');

  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const shot = join(SCREENSHOT_DIR, 'status-page-pg2-down.png');
  await page.screenshot({ path: shot, fullPage: true });
  const png = readFileSync(shot);
  t.ok(png.length > 1000, `screenshot written: ${shot} (${png.length} bytes)`);
  t.same(png.subarray(0, 8), PNG_SIGNATURE, 'it is a PNG');


  // The primary dies; pgwarden promotes pg3, the only replica left.
  const sessionsLines = page.locator('[data-chart="sessions"] polyline');
  await waitFor('the sessions chart has lines', async () => (await sessionsLines.count()) > 0, 15_000);
  const span = () => {
    const points = p.app.history().points;
    return points.length ? points[points.length - 1].t - points[0].t : 0;
  };
  await waitFor('12 s of history before the failover (most of the 20 s the charts show)', () => span() >= 12_000, 30_000);
  await cluster.kill9(cluster.nodes.find((n) => n.name === 'pg1')!);
  const marker = (event: string) => page.locator(`#history svg [data-event="${event}"]`);
  await waitFor('a primary.lost marker on the charts', async () => (await marker('primary.lost').count()) > 0, 30_000);
  await waitFor('a failover.promoted marker on the charts', async () => (await marker('failover.promoted').count()) > 0, 30_000);
  await waitFor('pg3 is the primary on the page', async () => (await page.locator('[data-backend="pg3"]').getAttribute('data-primary')) === 'true', 30_000);
  t.pass('the charts mark the primary lost and the promotion');
  t.equal(await marker('primary.lost').count(), 5, 'on each of the five charts');
  t.match(await marker('primary.lost').first().locator('title').textContent(), /primary lost: no primary \(was pg1\)/, 'with a title saying what happened');
  t.ok((await page.locator('#history-markers li[data-marker]').count()) >= 2, 'and listed beside the charts');
  // Let the writers come back through pg3 and a few samples land after the promotion.
  const promotedAt = Number(await marker('failover.promoted').first().getAttribute('data-t'));
  await waitFor('the page drew samples taken 4 s after the promotion', async () => Number(await page.locator('#history').getAttribute('data-now')) > promotedAt + 4_000, 30_000);
  for (const chart of ['sessions', 'queued', 'bytes', 'lag-bytes']) {
    const points = await page.locator(`[data-chart="${chart}"] polyline`).evaluateAll((els) => els.map((e) => e.getAttribute('points') ?? ''));
    t.ok(points.length > 0 && points.every((pts) => pts.trim().split(' ').length >= 2), `the ${chart} chart has lines with points`);
  }
  t.same(await page.locator('[data-chart="sessions"] polyline').evaluateAll((els) => [...new Set(els.map((e) => e.getAttribute('data-series')))].sort()), ['ro', 'rw'], 'one line per listener');

  const historyShot = join(SCREENSHOT_DIR, 'status-page-history-failover.png');
  await page.screenshot({ path: historyShot, fullPage: true });
  t.ok(readFileSync(historyShot).length > 1000, `screenshot written: ${historyShot}`);

  await Promise.all(load.map((l) => l.stop()));
  t.same(pageErrors, [], 'no errors in the page console');
});

/**
 * Clients that run `sql` through `port` until stopped, each reconnecting after a failure (its
 * server died, or it waited in the queue while there was no primary).
 */
function traffic(port: number, clients: number, sql: string): { stop(): Promise<void> } {
  let running = true;
  const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const loops = Array.from({ length: clients }, async () => {
    while (running) {
      let c: Client | undefined;
      try {
        c = await connect(port);
        while (running) {
          await c.query(sql);
          await pause(100);
        }
      } catch {
        await pause(200);
      } finally {
        await c?.end().catch(() => undefined);
      }
    }
  });
  return { stop: () => ((running = false), Promise.all(loops).then(() => undefined)) };
}

async function cards(page: Page): Promise<{ name: string; state: string }[]> {
  return page
    .locator('[data-backend]')
    .evaluateAll((els) => els.map((e) => ({ name: e.getAttribute('data-backend') ?? '', state: e.getAttribute('data-state') ?? '' })));
}

async function cardStates(page: Page): Promise<string[]> {
  return (await cards(page)).map((c) => c.state);
}
