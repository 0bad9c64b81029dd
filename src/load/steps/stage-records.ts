import type pg from 'pg';

import { csvField } from '../../sources/file/csv/csv-field.js';
import { MAX_REJECT_RAW_CHARS, type SourceItem, UNDECODABLE } from '../../sources/reader-items.js';
import type { StageProgress, StageResult } from './stage-result.js';
import { StagingWriter } from './staging-writer.js';

export interface StageRecordsOptions {
  loadId: number;
  /** The records of the file, from its format's reader. */
  items: AsyncIterable<SourceItem>;
  /** The source's column names, as the reader names them (keys) or lists them (positions). */
  columns: string[];
  /** How far through the file reading is, for progress. */
  bytesRead: () => number;
  /** Quoted, qualified staging table (from ferry.prepare_staging). */
  stagingTable: string;
  /** Rows per committed chunk; each commit records the checkpoint. (Default: 100000) */
  chunkRows?: number;
  /** Resuming: records up to this line are staged already. (Default: 0) */
  resumeAfterLine?: number;
  /** Resuming: rows staged up to the checkpoint. (Default: 0) */
  alreadyStaged?: number;
  /** The process's claim epoch: each chunk is fenced by it (StagingWriterOptions). */
  claimEpoch?: number;
  onProgress?: (progress: StageProgress) => void;
}

/**
 * stage, for every format but CSV: each record a reader yields is written as a CSV line for
 * the staging COPY (the same table shape as a CSV's: `_line`, then every column as text);
 * each reject goes to ferry.rejects. Chunks commit with the checkpoint, as for CSV.
 */
export async function stageRecords(client: pg.ClientBase, options: StageRecordsOptions): Promise<StageResult> {
  const resumeAfter = options.resumeAfterLine ?? 0;
  const writer = new StagingWriter([client], { ...options, delimiter: ',' });
  writer.lastLine = resumeAfter;
  // Keyed by name without NUL: a resumed load's names come from the catalog, which drops it.
  const index = new Map(options.columns.map((name, i) => [name.replaceAll('\0', ''), i]));
  const width = options.columns.length;
  let read = 0;
  let sinceProgress = 0;

  try {
    for await (const item of options.items) {
      if (item.kind === 'columns') continue;
      read++;
      if (item.line <= resumeAfter) continue;
      if (item.kind === 'reject') {
        writer.reject(item);
      } else {
        const fields: (string | null)[] = Array.isArray(item.values)
          ? item.values.length < width
            ? [...item.values, ...new Array<null>(width - item.values.length).fill(null)]
            : item.values
          : new Array<null>(width).fill(null);
        let problem: string | undefined;
        if (!Array.isArray(item.values)) {
          for (const [key, value] of item.values) {
            const at = index.get(key.includes('\0') ? key.replaceAll('\0', '') : key);
            // The columns come from a first reading of the whole file: a new key means it changed.
            if (at === undefined) problem = `"${key}" is not one of the file's columns (did the file change?)`;
            else fields[at] = value;
          }
        } else if (fields.length > width) {
          problem = `${fields.length} values for ${width} columns`;
        }
        const csv = problem ? undefined : csvFields(fields);
        if (typeof csv === 'string') {
          writer.out.appendText(item.line, csv);
          writer.lastLine = item.line;
        } else {
          writer.reject({
            line: item.line,
            rule: problem ? 'column_count' : 'encoding',
            message: `record ${item.line}: ${problem ?? `column "${options.columns[csv?.column ?? 0]}" ${csv?.why}`}`,
            raw: JSON.stringify(Array.isArray(item.values) ? item.values : Object.fromEntries(item.values))
              .slice(0, MAX_REJECT_RAW_CHARS)
              .replaceAll(UNDECODABLE, '\uFFFD'),
          });
        }
      }
      if (writer.out.size >= 1 << 20 || ++sinceProgress >= 10_000) {
        sinceProgress = 0;
        await writer.afterInput(read);
        options.onProgress?.({ bytesRead: options.bytesRead(), rowsRead: read });
      }
    }
    await writer.finish(read);
  } catch (error) {
    await writer.abort(error);
    throw error;
  }
  options.onProgress?.({ bytesRead: options.bytesRead(), rowsRead: read });
  return {
    rowsRead: read,
    rowsStaged: writer.rowsStaged,
    unparseable: read - writer.rowsStaged,
    lastLine: writer.lastLine,
  };
}

/**
 * Values as CSV fields for COPY (FORMAT csv, NULL ''): NULL unquoted and empty, the empty
 * string quoted. Or which column holds what PostgreSQL text cannot (NUL, undecodable bytes).
 */
function csvFields(values: (string | null)[]): string | { column: number; why: string } {
  let out = '';
  for (let i = 0; i < values.length; i++) {
    if (i > 0) out += ',';
    const v = values[i];
    if (v === null || v === undefined) continue;
    if (v.includes('\0')) return { column: i, why: 'holds a NUL character, which PostgreSQL text cannot' };
    if (v.includes(UNDECODABLE)) return { column: i, why: "holds bytes not valid in the file's encoding" };
    out += csvField(v);
  }
  return out;
}
