// The status page on the admin port, in a real headless Chromium against a real cluster: it
// shows every backend and the primary, and when a server dies its card turns down and the
// timeline says so, without a reload and without a JavaScript error.
import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import t from 'tap';
import type { Page } from 'playwright-core';
import { AdminServer } from '../../src/admin/server';
import { renderStatusPage } from '../../src/admin/status-page';
import { createLogger } from '../../src/logger';
import { Metrics } from '../../src/metrics/metrics';
import { freePort } from '../../src/harness/ports';
import { chromiumMissing, launchChromium } from '../helpers/browser';
import { startCluster } from '../helpers/cluster';
import { CHECK_USER, startProxy, waitFor, waitForBackend } from '../helpers/proxy';

/** Screenshots land under tap's own output directory (git-ignored), kept after the run. */
const SCREENSHOT_DIR = resolve(__dirname, '../../.tap/screenshots');
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

const missing = chromiumMissing();
if (missing) t.comment(`skipping the status page test: ${missing}`);

t.test('status page follows a backend going down', { skip: missing ?? false }, async (t) => {
  const browser = await launchChromium();
  if (browser === null) return t.plan(0, 'chromium is not available'); // plan(0, why) = skip
  t.teardown(() => browser.close());

  const cluster = await startCluster(t, { replicas: 2, checkUser: CHECK_USER });
  const p = await startProxy(t, cluster);
  for (const n of cluster.nodes) await waitForBackend(p, n.name, 'up', 30_000);

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

  t.same(pageErrors, [], 'no errors in the page console');
});

async function cards(page: Page): Promise<{ name: string; state: string }[]> {
  return page
    .locator('[data-backend]')
    .evaluateAll((els) => els.map((e) => ({ name: e.getAttribute('data-backend') ?? '', state: e.getAttribute('data-state') ?? '' })));
}

async function cardStates(page: Page): Promise<string[]> {
  return (await cards(page)).map((c) => c.state);
}
