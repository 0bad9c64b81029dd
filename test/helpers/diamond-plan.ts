import { mkdirSync } from 'node:fs';
import path from 'node:path';

import type pg from 'pg';

import { readPlan } from '../../src/plans/plan-file.js';
import { startPlan } from '../../src/plans/plan-run.js';
import { productsMapping, tempDir, writeFile } from './fixtures.js';

/**
 * Starts (and leaves to a worker that is not there) a plan `diamond` of acme's products:
 * customers → (suppliers, products) → inventory. Returns its run's id.
 */
export async function startDiamondPlan(pool: pg.Pool): Promise<number> {
  const dir = tempDir();
  mkdirSync(path.join(dir, 'mappings'));
  productsMapping(path.join(dir, 'mappings'));
  for (const name of ['customers', 'suppliers', 'products', 'inventory']) {
    writeFile(dir, `${name}.csv`, 'sku,name,price\nX,x,1\n');
  }
  const file = writeFile(
    dir,
    'diamond.yaml',
    `steps:
  customers: { load: customers.csv, tenant: acme, mapping: products }
  suppliers: { load: suppliers.csv, tenant: acme, mapping: products, after: [customers] }
  products: { load: products.csv, tenant: acme, mapping: products, after: customers }
  inventory: { load: inventory.csv, tenant: acme, mapping: products, after: [suppliers, products] }
`,
  );
  const { runId } = await startPlan(pool, await readPlan(file));
  return runId;
}
