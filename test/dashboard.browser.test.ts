// The dashboard in a real headless Chromium (Debian's `chromium`, driven by playwright-core):
// the loads page lists loads and follows a running one live; a load's page shows its counts,
// reject reasons and rejects; hostile values from a file render as text and run no script.
// Without chromium installed the file is skipped, saying why.
import { existsSync } from 'node:fs';

import pg from 'pg';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type RunningDashboard, startDashboard } from '../src/dashboard/dashboard-server.js';
import { load } from '../src/load/load.js';
import { startDiamondPlan } from './helpers/diamond-plan.js';
import { productsMapping, productsTable, registerLoadLike, tempDir, writeFile } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((file) => existsSync(file));
if (!CHROMIUM) {
  console.warn('dashboard.browser.test.ts: skipped, no `chromium` installed (Debian: apt-get install chromium)');
}

/** Markup a supplier's file may hold: each would set window.pwned if a page ever parsed it as HTML. */
const IMG = '<img src=x onerror="window.pwned=1">';
const SCRIPT = '</script><script>window.pwned=2</script>';

describe.skipIf(!CHROMIUM)('the dashboard in Chromium', () => {
  let db: TestDatabase;
  let browser: Browser;
  let dashboard: RunningDashboard;
  let hostileLoad: number;
  /** What a page's script did that it should not: a dialog, an error, a CSP violation. */
  const trouble: string[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    const dir = tempDir();
    await productsTable(db.pool, ['acme']);
    const mapping = productsMapping(dir);
    const csv = `sku,name,price\nA,ok,1\nB,"${IMG.replaceAll('"', '""')}","${IMG.replaceAll('"', '""')}"\nC,c,"${SCRIPT}"\nD,d,oops\n`;
    const file = writeFile(dir, `${IMG.replaceAll('"', '')}.csv`, csv);
    const result = await load(db.pool, { file, tenant: 'acme', mapping });
    expect(result.status).toBe('succeeded');
    hostileLoad = result.loadId!;
    dashboard = await startDashboard(db.pool, { port: 0 });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await dashboard?.close();
  });

  async function open(path: string): Promise<Page> {
    const page = await browser.newPage();
    page.on('dialog', (dialog) => {
      trouble.push(`dialog: ${dialog.message()}`);
      void dialog.dismiss();
    });
    page.on('pageerror', (error) => trouble.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') trouble.push(`console: ${message.text()}`);
    });
    await page.goto(new URL(path, dashboard.url).href);
    return page;
  }

  it('lists the loads, and follows a running one live', async () => {
    const page = await open('/');
    const row = page.locator(`#loads tr[data-load="${hostileLoad}"]`);
    await expect.poll(() => row.count()).toBe(1);
    expect(await row.locator('td').nth(4).textContent()).toBe('succeeded');
    // The file's hostile name is a name, shown as it is.
    expect(await row.locator('td').nth(10).textContent()).toContain(IMG.replaceAll('"', ''));
    await expect.poll(() => page.locator('#live.on').count()).toBe(1);

    const running = await registerLoadLike(db.pool, hostileLoad);
    const runningRow = page.locator(`#loads tr[data-load="${running}"]`);
    await expect.poll(() => runningRow.count(), { timeout: 5000 }).toBe(1);
    // Claimed in a session of its own, as a running load's process does (else it is interrupted).
    const claim = new pg.Client({ connectionString: db.url });
    await claim.connect();
    try {
      expect((await claim.query('select ferry.claim_load($1) as claimed', [running])).rows[0].claimed).toBe(true);
      await db.pool.query(`select ferry.set_status($1, 'staging')`, [running]);
      await db.pool.query(`select ferry.report_progress($1, 'stage', 50, 200, 7, 'w')`, [running]);
      await expect
        .poll(() => runningRow.locator('td').nth(4).textContent(), { timeout: 5000 })
        .toBe('staging (stage 25%)');
      await db.pool.query(`select ferry.report_progress($1, 'stage', 150, 200, 20, 'w')`, [running]);
      await expect
        .poll(() => runningRow.locator('td').nth(4).textContent(), { timeout: 5000 })
        .toBe('staging (stage 75%)');
    } finally {
      await claim.end();
    }
    await page.close();
  });

  it("shows a load's counts, reject reasons and rejects, hostile values as text, running no script", async () => {
    const page = await open(`/loads/${hostileLoad}`);
    await expect.poll(() => page.locator('#counts tr').count()).toBe(9);
    expect(await page.locator('#counts tr').first().textContent()).toBe('read4');
    expect(await page.locator('#reconciliation li.holds').count()).toBe(2);
    await expect.poll(() => page.locator('#reasons .row').count()).toBeGreaterThan(0);
    await expect.poll(() => page.locator('#rejects tbody tr').count()).toBe(3);
    const values = await page.locator('#rejects tbody td.value').allTextContents();
    expect(values).toContain(IMG);
    expect(values).toContain(SCRIPT);
    expect(await page.locator('#rejects img').count()).toBe(0);
    expect(await page.locator('main script').count()).toBe(0);

    await page.fill('#reject-q', 'oops');
    await page.click('#reject-search button');
    await expect.poll(() => page.locator('#rejects tbody tr').count()).toBe(1);
    expect(await page.locator('#page').textContent()).toBe('page 1 of 1 (1 rejects found)');
    expect(await page.locator('#csv').getAttribute('href')).toBe(`/api/loads/${hostileLoad}/rejects.csv`);
    expect(await page.locator('#sql').textContent()).toMatch(/^create function/);
    expect(await page.evaluate('window.pwned')).toBeUndefined();
    await page.close();
    expect(trouble).toEqual([]);
  });

  it('draws a plan as its dependency graph, a column per depth', async () => {
    await startDiamondPlan(db.pool);
    const page = await open('/plans');
    const columns = page.locator('.plan .graph .level');
    await expect.poll(() => columns.count()).toBe(3);
    expect(await columns.nth(0).locator('.step strong').allTextContents()).toEqual(['customers']);
    expect(await columns.nth(1).locator('.step strong').allTextContents()).toEqual(['suppliers', 'products']);
    expect(await columns.nth(2).locator('.step .after').allTextContents()).toEqual(['after suppliers, products']);
    await page.close();
    expect(trouble).toEqual([]);
  });

  it('shows the syncs and the workers pages', async () => {
    await db.pool.query(`select ferry.declare_sync('nightly', 'acme', 'products', 'upsert', '0 3 * * *', '{}')`);
    const syncs = await open('/syncs');
    await expect.poll(() => syncs.locator('#syncs tbody tr td').first().textContent()).toBe('nightly');
    await syncs.close();
    const workers = await open('/workers');
    await expect.poll(() => workers.locator('#alive').textContent()).toBe('0 workers alive');
    await workers.close();
    expect(trouble).toEqual([]);
  });

  it.runIf(process.env.PGFERRY_SCREENSHOTS)('takes the screenshots of docs/dashboard.md', async () => {
    for (const [path, name] of [
      ['/', 'dashboard-loads.png'],
      [`/loads/${hostileLoad}`, 'dashboard-load.png'],
      ['/plans', 'dashboard-plans.png'],
    ]) {
      const page = await open(path);
      await page.setViewportSize({ width: 1200, height: 800 });
      await page.waitForLoadState('networkidle').catch(() => {});
      await page.screenshot({ path: `docs/${name}`, fullPage: true });
      await page.close();
    }
  });
});
