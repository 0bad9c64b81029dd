/**
 * Renders rows as a plain text table with a header line; numbers are right-aligned. Cells are
 * made printable (values come from files and tables: an escape sequence must not reach the
 * terminal).
 */
export function textTable(headers: string[], rows: (string | number | null | undefined)[][]): string {
  const cells = rows.map((row) =>
    row.map((v) =>
      v === null || v === undefined ? '' : typeof v === 'number' ? formatNumber(v) : printable(String(v)),
    ),
  );
  const numeric = headers.map(
    (_, i) => rows.length > 0 && rows.every((row) => typeof row[i] === 'number' || row[i] == null),
  );
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((row) => (row[i] ?? '').length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => (numeric[i] ? v.padStart(widths[i]) : v.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}

/** 12345 -> "12,345" */
export function formatNumber(n: number): string {
  return n.toLocaleString('en-US');
}

/** 1234 ms -> "1.2 s" */
export function formatMs(ms: number | undefined): string {
  if (ms === undefined) return '-';
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** Cuts text to one printable line of at most `max` characters. */
export function oneLine(text: string, max = 80): string {
  const flat = printable(text.replace(/\s+/g, ' ').trim());
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/**
 * Control characters (escape sequences, backspace, C1 controls) and the bidirectional
 * overrides that reorder what a terminal shows, written as visible `\u{…}` escapes.
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);
}

// eslint-disable-next-line no-control-regex
const UNPRINTABLE = /[\x00-\x08\x0B-\x1F\x7F-\x9F\u202A-\u202E\u2066-\u2069]/g;
