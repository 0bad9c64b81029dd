// The dashboard in a real headless Chromium (Debian's `chromium`, driven by playwright-core):
// the loads page lists loads and follows a running one live; a load's page shows its counts,
// reject reasons and rejects; hostile values from a file render as text and run no script.
// Without chromium installed the file is skipped, saying why.
import { existsSync } from 'node:fs';

import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type RunningDashboard, startDashboard } from '../src/dashboard/dashboard-server.js';
import { load } from '../src/load/load.js';
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
    await db.pool.query(`select ferry.set_status($1, 'staging')`, [running]);
    await db.pool.query(`select ferry.report_progress($1, 'stage', 50, 200, 7, 'w')`, [running]);
    // Claimed by nobody it would show as interrupted; the page shows what the API says.
    await expect
      .poll(() => runningRow.locator('td').nth(4).textContent(), { timeout: 5000 })
      .toMatch(/^(staging \(stage 25%\)|interrupted)$/);
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
});
