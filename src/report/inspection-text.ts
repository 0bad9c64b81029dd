import type { FileInspection } from '../sources/inspect-file.js';
import { formatNumber, oneLine, printable, textTable } from './text-table.js';

/** Widest value shown in the sample table. */
const SAMPLE_CELL_CHARS = 24;

/**
 * `pgferry inspect`'s report: how the file is read, its columns as a mapping names them, its
 * first rows. Every name and value from the file is made printable.
 */
export function formatInspection(seen: FileInspection): string {
  const { layout } = seen;
  const lines: string[] = [`${printable(seen.file)}: ${formatNumber(seen.bytes)} bytes`];
  const wrapper =
    layout.compression === 'none'
      ? ''
      : ` (${layout.compression}${layout.entry ? `: ${printable(layout.entry)}` : ''})`;
  lines.push(`  format      ${layout.format}${wrapper}`);
  if (layout.encoding) lines.push(`  encoding    ${layout.encoding} (${printable(layout.encodingReason ?? '')})`);
  if (layout.delimiter) lines.push(`  delimiter   ${describeDelimiter(layout.delimiter)}`);
  if (seen.sheets) {
    lines.push(
      `  sheets      ${seen.sheets
        .map((s) => JSON.stringify(s))
        .map(printable)
        .join(', ')}`,
    );
  }
  if (layout.sheet !== undefined) lines.push(`  sheet read  ${printable(JSON.stringify(String(layout.sheet)))}`);
  if (seen.headerRow !== undefined) lines.push(`  header row  ${seen.headerRow}`);
  if (layout.table) lines.push(`  table       ${printable(layout.table)}`);
  if (seen.recordArrays) {
    lines.push('  arrays that could be the records (--records):');
    if (seen.recordArrays.length === 0) lines.push('    none holds objects');
    for (const array of seen.recordArrays) {
      lines.push(
        `    ${printable(array.path)}  ${formatNumber(array.objects)} of ${formatNumber(array.elements)} elements are objects${array.chosen ? '  (read)' : ''}`,
      );
    }
  } else if (layout.records) lines.push(`  records     ${printable(layout.records)}`);

  lines.push('', `${seen.columns.length} columns, as a mapping names them (select … from staged s):`);
  const first = seen.sample[0]?.values ?? {};
  // The file's own name only where staging changed it (empty, repeated, too long).
  const renamed = seen.columns.some((column) => column.source !== column.staged);
  lines.push(
    textTable(
      ['#', 'in the mapping', ...(renamed ? ['in the file'] : []), 'first value'],
      seen.columns.map((column, i) => [
        i + 1,
        column.inMapping,
        ...(renamed ? [column.source === column.staged ? '' : JSON.stringify(column.source)] : []),
        oneLine(first[column.staged] ?? '', 40),
      ]),
    ),
  );

  if (seen.sample.length > 0) {
    lines.push('', `first ${seen.sample.length} rows:`);
    lines.push(
      textTable(
        [lineLabel(layout.format), ...seen.columns.map((c) => c.staged)],
        seen.sample.map((row) => [
          row.line,
          ...seen.columns.map((c) => {
            const value = row.values[c.staged];
            return value === null || value === undefined ? '' : oneLine(value, SAMPLE_CELL_CHARS);
          }),
        ]),
      ),
    );
  } else if (seen.columns.length === 0) {
    lines.push('', 'no records read: name the array (or element) that holds them with --records');
  } else lines.push('', 'no rows below the header');
  if (seen.rejects.length > 0) {
    lines.push('', 'lines a load would reject before the mapping sees them:');
    for (const reject of seen.rejects) lines.push(`  ${reject.rule}: ${oneLine(reject.message, 160)}`);
  }
  return lines.join('\n');
}

/** What a row's number is: a line, a sheet row, a record's position. */
function lineLabel(format: string): string {
  return format === 'csv' || format === 'ndjson' ? 'line' : format === 'xlsx' ? 'row' : 'record';
}

function describeDelimiter(delimiter: string): string {
  const names: Record<string, string> = { ',': 'comma', ';': 'semicolon', '\t': 'tab', '|': 'pipe' };
  return names[delimiter] ? `${JSON.stringify(delimiter)} (${names[delimiter]})` : printable(JSON.stringify(delimiter));
}
