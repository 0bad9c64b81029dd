import { PgferryError } from '../errors.js';
import { encodeXmlName } from '../sources/file/xml/xml-reader.js';
import type { ExportColumn, ExportRow } from './export-column.js';
import type { TextFormat } from './text-writer.js';

/**
 * Characters XML 1.0 cannot hold at all, not even as a character reference: the C0 controls
 * but TAB, LF and CR, and U+FFFE, U+FFFF. (PostgreSQL text never holds NUL or half a
 * surrogate pair.)
 */
// eslint-disable-next-line no-control-regex
const NOT_XML = /[\x00-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF]/;

/**
 * XML: `<export table="app.products">` (just `<export>` for a query) holding one `<row>` a
 * row, one line each, with a child element per column named after it (a name that is not a
 * valid XML name is encoded as XmlConvert does: `Item Code` is `Item_x0020_Code`). NULL
 * leaves the element out; the empty string is `<col></col>`. Text is escaped (`&`, `<`, `>`;
 * CR as `&#13;` so that XML's line-end handling keeps it).
 *
 * A value holding a character XML 1.0 cannot represent (most control characters) fails the
 * export, naming the row and column, rather than be changed silently: export such data as
 * CSV, JSON or SQL.
 *
 * @example
 *   // <?xml version="1.0" encoding="UTF-8"?>
 *   // <export table="app.products">
 *   //   <row><sku>A1</sku><name>Anvil &amp; hammer</name></row>
 *   // </export>
 */
export function xmlFormat(columns: readonly ExportColumn[], options: { table?: string } = {}): TextFormat {
  const open = columns.map((c) => `<${encodeXmlName(c.name)}>`);
  const close = columns.map((c) => `</${encodeXmlName(c.name)}>`);
  const root = options.table === undefined ? '<export>' : `<export table="${escapeXmlAttribute(options.table)}">`;
  return {
    begin: () => `<?xml version="1.0" encoding="UTF-8"?>\n${root}\n`,
    row(values: ExportRow, index: number): string {
      let text = '  <row>';
      for (let i = 0; i < values.length; i++) {
        const value = values[i];
        if (value === null) continue;
        if (NOT_XML.test(value)) throw notRepresentable(value, columns[i].name, index);
        text += open[i] + escapeXmlText(value) + close[i];
      }
      return `${text}</row>\n`;
    },
    end: () => '</export>\n',
  };
}

export function escapeXmlText(value: string): string {
  return /[&<>\r]/.test(value)
    ? value.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('\r', '&#13;')
    : value;
}

function escapeXmlAttribute(value: string): string {
  return escapeXmlText(value).replaceAll('"', '&quot;').replaceAll('\t', '&#9;').replaceAll('\n', '&#10;');
}

function notRepresentable(value: string, column: string, row: number): PgferryError {
  const match = NOT_XML.exec(value);
  const code = (match?.[0].codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0');
  return new PgferryError(
    `cannot write row ${row} as XML: column ${column} holds the character U+${code}, which XML 1.0 cannot represent`,
    { hint: 'export these rows as csv, json or sql instead' },
  );
}
