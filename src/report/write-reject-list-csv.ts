import { once } from 'node:events';
import { open } from 'node:fs/promises';

import type { RejectRow } from '../catalog.js';
import { neutraliseFormula } from '../export/formula-neutralise.js';
import { csvLine } from './csv-writer.js';

/**
 * `pgferry validate -o FILE`: every reject as one CSV line — where (`line 12`, `Kunden!C12`),
 * line, rule, column, value, message, raw — in file order. Text from the file is
 * formula-neutralised (a value `=HYPERLINK(…)` is written `'=HYPERLINK(…)`): the list is for
 * reading in a spreadsheet, not for loading again (`pgferry rejects LOAD -o` writes that).
 *
 * @example
 *   await writeRejectListCsv(result.rejects ?? [], 'rejects.csv');
 */
export async function writeRejectListCsv(rejects: readonly RejectRow[], file: string): Promise<void> {
  // Opened first: a path that cannot be written is an error here, not an unhandled event.
  const out = (await open(file, 'w')).createWriteStream();
  const write = async (values: (string | number | null)[]) => {
    const line = csvLine(values.map((v) => (typeof v === 'string' ? neutraliseFormula(v) : v)));
    if (!out.write(`${line}\n`)) await once(out, 'drain');
  };
  await write(['where', 'line', 'rule', 'column', 'value', 'message', 'raw']);
  for (const r of rejects) await write([r.where, r.line, r.rule, r.column, r.value, r.message, r.raw]);
  out.end();
  await once(out, 'finish');
}
