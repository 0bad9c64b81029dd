import { once } from 'node:events';
import { createWriteStream } from 'node:fs';

import type pg from 'pg';

import { rejectedLines } from '../catalog.js';
import { csvLine } from './csv-writer.js';

/**
 * `pgferry rejects LOAD -o FILE`: writes a load's rejected lines as a CSV to fix and load
 * again with the same mapping: the source's own columns, then pgferry_line, pgferry_reasons
 * and pgferry_raw (the text of a line that could not be parsed at all). Returns how many
 * lines it wrote.
 *
 * @example
 *   const { rows } = await writeRejectsCsv(pool, 42, 'rejects.csv');
 */
export async function writeRejectsCsv(pool: pg.Pool, loadId: number, file: string): Promise<{ rows: number }> {
  const { columns, rows } = await rejectedLines(pool, loadId);
  const out = createWriteStream(file);
  const write = async (line: string) => {
    if (!out.write(`${line}\n`)) await once(out, 'drain');
  };
  await write(csvLine([...columns, 'pgferry_line', 'pgferry_reasons', 'pgferry_raw']));
  for (const r of rows) await write(csvLine([...r.values, r.line, r.reasons, r.raw]));
  out.end();
  await once(out, 'finish');
  return { rows: rows.length };
}
