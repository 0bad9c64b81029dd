import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

import type pg from 'pg';

import { load } from './load/load.js';
import type { LoadOptions, LoadResult } from './load/types.js';
import { addTenant, protectTable } from './tenants.js';

/** Files the demo ships with (examples/ and mappings/ of this package). */
export const DEMO_FILES = {
  table: fileURLToPath(new URL('../examples/app-products.sql', import.meta.url)),
  csv: fileURLToPath(new URL('../examples/supplier-catalog.csv', import.meta.url)),
  mapping: fileURLToPath(new URL('../mappings/products.sql', import.meta.url)),
};

export const DEMO_TENANT = 'demo';

/**
 * The quickstart: creates the example target table app.products, adds tenant `demo`, protects
 * the table and loads the shipped supplier catalog (10,000 rows, a few percent dirty).
 * Running it again loads the file again (everything then unchanged).
 */
export async function demo(pool: pg.Pool, onEvent?: LoadOptions['onEvent']): Promise<LoadResult> {
  await pool.query(await readFile(DEMO_FILES.table, 'utf8'));
  const { rowCount } = await pool.query('select from ferry.tenants where slug = $1', [DEMO_TENANT]);
  if (!rowCount) await addTenant(pool, DEMO_TENANT);
  await protectTable(pool, 'app.products');
  return load(pool, { file: DEMO_FILES.csv, tenant: DEMO_TENANT, mapping: DEMO_FILES.mapping, force: true, onEvent });
}
