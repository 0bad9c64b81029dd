import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import type pg from 'pg';

import { addTenant, protectTable } from '../../src/tenants.js';

/** A fresh temporary folder for files a test writes. */
export function tempDir(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'pgferry-case-'));
}

/** Writes a file into dir and returns its path. */
export function writeFile(dir: string, name: string, content: string | Buffer): string {
  const file = path.join(dir, name);
  writeFileSync(file, content);
  return file;
}

/** The product table most tests load into (schema app must exist). */
export const PRODUCTS_DDL = `
  create table app.products (
    tenant_id      text          not null,
    sku            text          not null,
    name           text          not null,
    price          numeric(10,2) not null check (price >= 0),
    stock_quantity integer       not null default 0,
    updated_at     timestamptz,
    primary key (tenant_id, sku)
  )`;

/** The demo's product table, protected, with the given tenants. */
export async function productsTable(pool: pg.Pool, tenants: string[] = ['acme']): Promise<void> {
  await pool.query('create schema if not exists app');
  await pool.query(PRODUCTS_DDL);
  for (const tenant of tenants) await addTenant(pool, tenant);
  await protectTable(pool, 'app.products');
}

/** A mapping file for app.products over a CSV with columns sku,name,price[,stock]. */
export function productsMapping(dir: string, header: Record<string, string> = {}, name = 'products'): string {
  const lines = Object.entries({ target: 'app.products', key: 'sku', ...header }).map(([k, v]) => `-- ${k}: ${v}`);
  return writeFile(
    dir,
    `${name}.sql`,
    `${lines.join('\n')}
select s.sku as sku, s.name as name, s.price as price
from staged s
`,
  );
}

/** A new load of a finished one's tenant and mapping, registered and left as it is (nobody runs it). */
export async function registerLoadLike(pool: pg.Pool, finished: number): Promise<number> {
  const { rows } = await pool.query<{ id: string }>(
    `select (ferry.register_load(t.slug, l.mapping_id, l.source, null, l.file_bytes, l.format, '{}', 'test')).id
     from ferry.loads l join ferry.tenants t on t.id = l.tenant_id
     where l.id = $1`,
    [finished],
  );
  return Number(rows[0].id);
}
