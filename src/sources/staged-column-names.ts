/** PostgreSQL's identifier limit (NAMEDATALEN - 1), in bytes. */
export const MAX_IDENTIFIER_BYTES = 63;

/** PostgreSQL's system columns: no table may have a column of these names. */
const SYSTEM_COLUMNS = ['tableoid', 'xmin', 'cmin', 'xmax', 'cmax', 'ctid'];

/** The staging table's own column for the source line number. */
export const LINE_COLUMN = '_line';

/**
 * Staging column names from a source's headers: verbatim, except that an empty header becomes
 * `col_<position>` (1-based), names are cut to 63 bytes (on a character boundary), and a
 * repeated name (or one equal to `_line` or to a system column such as `xmin`) gets `_2`, `_3`, …
 * — cut again if needed so that the suffix fits.
 *
 * @example
 *   stagedColumnNames(['sku', '', 'sku']) // ['sku', 'col_2', 'sku_2']
 */
export function stagedColumnNames(headers: readonly string[]): string[] {
  const taken = new Set<string>([LINE_COLUMN, ...SYSTEM_COLUMNS]);
  return headers.map((header, index) => {
    const base = cutToBytes(
      header.replaceAll('\0', '') === '' ? `col_${index + 1}` : header.replaceAll('\0', ''),
      MAX_IDENTIFIER_BYTES,
    );
    let name = base;
    for (let n = 2; taken.has(name); n++) {
      const suffix = `_${n}`;
      name = cutToBytes(base, MAX_IDENTIFIER_BYTES - suffix.length) + suffix;
    }
    taken.add(name);
    return name;
  });
}

function cutToBytes(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  let out = '';
  let bytes = 0;
  for (const ch of text) {
    const size = Buffer.byteLength(ch);
    if (bytes + size > maxBytes) break;
    out += ch;
    bytes += size;
  }
  return out;
}
