import type pg from 'pg';

import { rejectedLines } from '../catalog.js';
import { neutraliseFormula } from '../export/formula-neutralise.js';
import { csvLine } from '../report/csv-writer.js';
import { catalogDb } from './catalog-db.js';
import { requireLoad } from './require-load.js';

/**
 * `GET /api/loads/ID/rejects.csv`: the rejected lines as `pgferry rejects LOAD -o FILE` writes
 * them (the source's columns, pgferry_line, pgferry_reasons, pgferry_raw), with every text
 * value that a spreadsheet would run as a formula neutralised: this file is downloaded from
 * a browser and opened by whoever asked for it. NotFound when the load is not the tenant's.
 */
export async function* rejectsCsvLines(
  pool: pg.Pool,
  loadId: number,
  options: { tenant?: string } = {},
): AsyncGenerator<string> {
  await requireLoad(catalogDb(pool), loadId, options.tenant);
  const { columns, rows } = await rejectedLines(pool, loadId);
  const cell = (v: string | number | null) => (typeof v === 'string' ? neutraliseFormula(v) : v);
  yield `${csvLine([...columns, 'pgferry_line', 'pgferry_reasons', 'pgferry_raw'].map(cell))}\n`;
  for (const r of rows) yield `${csvLine([...r.values, r.line, r.reasons, r.raw].map(cell))}\n`;
}
