import { type ExportColumn, type ExportRow, isNumberKind, PLAIN_NUMBER } from './export-column.js';
import type { TextFormat } from './text-writer.js';

/** Rows per INSERT statement. */
export const SQL_ROWS_PER_INSERT = 500;

/**
 * SQL: a comment naming what was exported, `SET standard_conforming_strings = on;`, then
 * `INSERT INTO "schema"."table" ("col", …) VALUES` statements of up to 500 rows, one row a
 * line. Strings are quoted with `''` for a quote (no backslash escapes, hence the SET), numbers
 * unquoted (NaN and Infinity quoted), booleans TRUE/FALSE, NULL as NULL.
 *
 * @example
 *   // -- pgferry export of app.products for tenant acme
 *   // SET standard_conforming_strings = on;
 *   // INSERT INTO "app"."products" ("sku", "name") VALUES
 *   // ('A1', 'O''Brien'),
 *   // ('A2', NULL);
 */
export function sqlFormat(
  columns: readonly ExportColumn[],
  options: { schema?: string; table: string; description: string },
): TextFormat {
  const target =
    (options.schema === undefined ? '' : `${quoteIdentifier(options.schema)}.`) + quoteIdentifier(options.table);
  const head = `INSERT INTO ${target} (${columns.map((c) => quoteIdentifier(c.name)).join(', ')}) VALUES\n`;
  const kinds = columns.map((c) => c.kind);
  let pending = 0;
  return {
    // A comment must stay on its line.
    begin: () => `-- ${options.description.replace(/[\r\n]/g, ' ')}\nSET standard_conforming_strings = on;\n`,
    row(values: ExportRow): string {
      let tuple = pending === 0 ? `${head}(` : ',\n(';
      for (let i = 0; i < values.length; i++) {
        if (i > 0) tuple += ', ';
        const value = values[i];
        if (value === null) tuple += 'NULL';
        else if (kinds[i] === 'boolean') tuple += value === 't' ? 'TRUE' : 'FALSE';
        else if (isNumberKind(kinds[i]) && PLAIN_NUMBER.test(value)) tuple += value;
        else tuple += quoteLiteral(value);
      }
      tuple += ')';
      if (++pending === SQL_ROWS_PER_INSERT) {
        pending = 0;
        tuple += ';\n';
      }
      return tuple;
    },
    end: () => (pending > 0 ? ';\n' : ''),
  };
}

export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function quoteLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}
