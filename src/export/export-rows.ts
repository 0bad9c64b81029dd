import { PassThrough, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';

import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';

import { recordAudit } from '../audit.js';
import { PgferryError } from '../errors.js';
import { CopyTextRows } from './copy-text-rows.js';
import { csvFormat } from './csv-format.js';
import type { ExportColumn, ValueKind } from './export-column.js';
import { asExportError } from './export-error.js';
import { type ExportFormat, formatFromPath, parseExportFormat } from './export-format.js';
import { openExportOutput } from './export-output.js';
import { checkExportQuery } from './export-query.js';
import { jsonFormat } from './json-format.js';
import { sqlFormat } from './sql-format.js';
import { type TextFormat, TextWriter } from './text-writer.js';
import { XlsxWriter } from './xlsx-writer.js';
import { xmlFormat } from './xml-format.js';

export interface ExportOptions {
  /** The tenant whose rows are exported; the export runs as its role, under row-level security. */
  tenant: string;
  /** A protected table (`app.products`); its tenant column is left out unless named in `columns`. */
  table?: string;
  /** With `table`: the columns, in order, named as in SQL (`sku`, `"Item Code"`). (Default: all but the tenant column) */
  columns?: string[];
  /** With `table`: a condition on its rows, in SQL (`price > 10`). */
  where?: string;
  /** Instead of `table`: one SELECT, VALUES, TABLE or WITH … SELECT statement. */
  query?: string;
  /** (Default: from `output`'s extension — `.csv`, `.tsv`, `.xlsx`, `.json`, `.ndjson`, `.xml`, `.sql`, each optionally `.gz` — else csv) */
  format?: ExportFormat;
  /** Compress with gzip. (Default: true when `output` ends in `.gz`) */
  gzip?: boolean;
  /**
   * A file name, or a stream (which is written to and not ended). A file is written under a
   * temporary name and renamed when complete: a failed export leaves nothing behind.
   */
  output: string | Writable;
  /** Leave formula-like text as it is in csv, tsv and xlsx (see neutraliseFormula). (Default: false) */
  raw?: boolean;
  /** Called with the number of rows read so far, every few thousand rows. */
  onProgress?: (rows: number) => void;
}

export interface ExportResult {
  rows: number;
  columns: ExportColumn[];
  format: ExportFormat;
  gzip: boolean;
  /** The table exported (`app.products`), or undefined for a query. */
  table: string | undefined;
}

/** What the catalog says of an exported table. */
interface TableExport {
  schema: string;
  name: string;
  /** `schema.table`, quoted where SQL needs it. */
  display: string;
}

/**
 * exportRows: writes a tenant's rows of a protected table, or the result of a query, as csv,
 * tsv, xlsx, json, ndjson, xml or sql, streaming (a million rows are never in memory at once).
 *
 * The query runs as the tenant's role, inside a SECURITY DEFINER function the tenant owns, in
 * a read-only transaction (see sql/functions/export.sql): under row-level security it
 * sees only the tenant's rows, whatever `where` or `query` say, and cannot change anything.
 * Each export is recorded in the audit log.
 *
 * @example
 *   await exportRows(pool, { tenant: 'acme', table: 'app.products', where: 'price > 10', output: 'products.xlsx' });
 *   await exportRows(pool, { tenant: 'acme', query: 'select sku, price from app.products', format: 'ndjson', output: process.stdout });
 */
export async function exportRows(pool: pg.Pool, options: ExportOptions): Promise<ExportResult> {
  checkOptions(options);
  const fromPath = typeof options.output === 'string' ? formatFromPath(options.output) : undefined;
  const format = options.format === undefined ? (fromPath?.format ?? 'csv') : parseExportFormat(options.format);
  const gzip = options.gzip ?? fromPath?.gzip ?? false;
  const what = {
    ...(options.table === undefined ? { query: options.query } : { table: options.table }),
    ...(options.columns ? { columns: options.columns } : {}),
    ...(options.where === undefined ? {} : { where: options.where }),
    format,
    gzip,
    ...(typeof options.output === 'string' ? { output: options.output } : {}),
  };
  try {
    const result = await runExport(pool, options, format, gzip);
    await recordAudit(pool, {
      command: 'export',
      tenant: options.tenant,
      outcome: 'exported',
      details: { ...what, ...(result.table ? { table: result.table } : {}), rows: result.rows },
    });
    return result;
  } catch (error) {
    const failure = asExportError(error, options);
    await recordAudit(pool, {
      command: 'export',
      tenant: options.tenant,
      outcome: 'failed',
      details: { ...what, error: failure instanceof Error ? failure.message : String(failure) },
    }).catch(() => {});
    throw failure;
  }
}

function checkOptions(options: ExportOptions): void {
  if (!options.tenant) throw new PgferryError('name the tenant whose rows to export (--tenant)');
  if ((options.table === undefined) === (options.query === undefined)) {
    throw new PgferryError('export either a table (--table) or a query (--query)');
  }
  if (options.query !== undefined) {
    if (options.where !== undefined || options.columns !== undefined) {
      throw new PgferryError('--where and --columns go with --table; put them in the --query itself');
    }
    checkExportQuery(options.query);
  }
}

async function runExport(
  pool: pg.Pool,
  options: ExportOptions,
  format: ExportFormat,
  gzip: boolean,
): Promise<ExportResult> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    // Dates and timestamps in ISO form, floats with every digit, whatever the server's defaults.
    await client.query(`select set_config('datestyle', 'ISO', true), set_config('extra_float_digits', '1', true)`);
    let query = options.query ?? '';
    let table: TableExport | undefined;
    if (options.table !== undefined) {
      const { rows } = await client.query<{ schema_name: string; table_name: string; display: string; query: string }>(
        'select * from ferry.export_table_query($1, $2, $3, $4)',
        [options.tenant, options.table, options.columns ?? null, options.where ?? null],
      );
      ({ query } = rows[0]);
      table = { schema: rows[0].schema_name, name: rows[0].table_name, display: rows[0].display };
    }
    const { rows: described } = await client.query<{
      function_name: string;
      column_name: string;
      type_name: string;
      kind: ValueKind;
    }>('select * from ferry.prepare_export($1, $2)', [options.tenant, query]);
    const columns = described.map((r) => ({ name: r.column_name, type: r.type_name, kind: r.kind }));
    // From here on, nothing the query calls can write (and it cannot undo this: going back to
    // read-write is refused once a query has run).
    await client.query('set transaction read only');

    const output = await openExportOutput(options.output);
    let rows: number;
    try {
      const copy = client.query(copyTo(`copy (select * from ${described[0].function_name}()) to stdout`));
      const parser = new CopyTextRows(columns.length, options.onProgress);
      const tail = gzip ? [createGzip()] : [];
      if (format === 'xlsx') {
        const formatted = new PassThrough();
        const xlsx = new XlsxWriter(columns, formatted, { sheet: table?.name ?? 'export', neutralise: !options.raw });
        const writing = pipeline([formatted, ...tail, output.stream]);
        const reading = pipeline(copy, parser, xlsx);
        reading.catch((error: unknown) => formatted.destroy(error as Error));
        writing.catch((error: unknown) => xlsx.destroy(error as Error));
        await Promise.all([reading, writing]);
      } else {
        const writer = new TextWriter(textFormat(format, columns, options, table));
        await pipeline([copy, parser, writer, ...tail, output.stream]);
      }
      rows = parser.rows;
      await output.commit();
    } catch (error) {
      await output.abort();
      throw error;
    }
    // Read-only: the functions prepare_export() installed go with the transaction.
    await client.query('rollback');
    client.release(true);
    return { rows, columns, format, gzip, table: table?.display };
  } catch (error) {
    // The connection ran the tenant's SQL, and may be mid-COPY: closed, never pooled again.
    client.release(error instanceof Error ? error : true);
    throw error;
  }
}

function textFormat(
  format: Exclude<ExportFormat, 'xlsx'>,
  columns: ExportColumn[],
  options: ExportOptions,
  table: TableExport | undefined,
): TextFormat {
  const neutralise = !options.raw;
  switch (format) {
    case 'csv':
      return csvFormat(columns, { neutralise });
    case 'tsv':
      return csvFormat(columns, { delimiter: '\t', neutralise });
    case 'json':
      return jsonFormat(columns);
    case 'ndjson':
      return jsonFormat(columns, { ndjson: true });
    case 'xml':
      return xmlFormat(columns, { table: table?.display });
    case 'sql':
      return sqlFormat(columns, {
        schema: table?.schema,
        table: table?.name ?? 'export',
        description: `pgferry export of ${table ? table.display : 'a query'} for tenant ${options.tenant}`,
      });
  }
}
