// The status page's Cluster section, drawn by a real headless Chromium from a fixed snapshot
// served by a real AdminServer (no PostgreSQL, no etcd: a coordinated snapshot cannot come from
// a single-instance run). test/integration/status-page.test.ts covers the rest of the page
// against a real cluster.
import t from 'tap';
import type { Page } from 'playwright-core';
import { AdminServer } from '../../src/admin/server';
import type { AdminController } from '../../src/admin/controller';
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
      { name: 'pg2', host: '127.0.0.1', port: 5433, state: 'up', adminState: 'ready', fenced: false, transitional: false, role: 'primary', isPrimary: true, weight: 100, effectiveWeight: 100, backup: false, sessions: 0 },
    ],
    events: [],
    ...(coordination ? { coordination } : {}),
  };
}

const COORDINATED: CoordinationStatus = coordinationStatus({ fenced: ['pg1'], lastHandshakeMs: 182 });

const missing = chromiumMissing();
if (missing) t.comment(`skipping the status page cluster test: ${missing}`);

t.test('the Cluster section shows the leader, epoch, primary, fenced servers, etcd and every member', { skip: missing ?? false }, async (t) => {
  const browser = await launchChromium();
  if (browser === null) return t.plan(0, 'chromium is not available');
  t.teardown(() => browser.close());

  let current = snapshot(COORDINATED);
  const controller: AdminController = {
    status: () => current,
    history: () => ({ intervalMs: 5_000, windowMs: 900_000, now: Date.now(), points: [], markers: [] }),
    setAdminState: () => undefined,
    switchover: async (to) => ({ ok: false, to, error: 'not here' }),
    reload: async () => ({ ok: true }),
    ready: () => true,
  };
  const metrics = new Metrics(new Bus(), controller);
  t.teardown(() => metrics.close());
  const admin = new AdminServer({ host: '127.0.0.1', port: 0, controller, metrics, log: createLogger('silent'), statusPage: renderStatusPage });
  await admin.listen();
  t.teardown(() => admin.close());

  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const pageErrors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => pageErrors.push(`uncaught: ${e.message}`));
  await page.goto(`http://127.0.0.1:${admin.address().port}/`);

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
