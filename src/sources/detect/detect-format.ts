import type { SourceFormat } from '../source-format.js';

/**
 * A text file's format from its first characters: `<` XML; `[` a JSON array; `{` NDJSON when
 * the first line is a whole JSON object followed by another line that starts with `{` (a
 * one-line object holding an array is a JSON document); SQL comments or statements, and a `;`,
 * a SQL dump; anything else CSV (its delimiter is sniffed later).
 *
 * @param sample the first decoded characters (64 KiB is plenty)
 * @example
 *   detectTextFormat('{"a":1}\n{"a":2}\n') // 'ndjson'
 */
export function detectTextFormat(
  sample: string,
  { records }: { records?: string } = {},
): Exclude<SourceFormat, 'xlsx' | 'tsv'> {
  const text = sample.replace(/^\uFEFF/, '').trimStart();
  if (text.startsWith('<')) return 'xml';
  if (text.startsWith('[')) return 'json';
  // --records points into a document.
  if (text.startsWith('{')) return records === undefined && looksLikeNdjson(text) ? 'ndjson' : 'json';
  if (SQL_START.test(text) && text.includes(';')) return 'sql';
  return 'csv';
}

const SQL_START =
  /^(--|\/\*|#|(insert\s+into|create\s+table|drop\s+table|set\s|lock\s+tables|use\s|begin|start\s+transaction|alter\s|select\s+pg_catalog)\b)/i;

function looksLikeNdjson(text: string): boolean {
  const newline = text.indexOf('\n');
  const first = newline < 0 ? text : text.slice(0, newline);
  let value: unknown;
  try {
    value = JSON.parse(first);
  } catch {
    // A document spread over lines (or a first line longer than the sample).
    return false;
  }
  const rest = newline < 0 ? '' : text.slice(newline + 1).trimStart();
  if (rest !== '') return rest.startsWith('{');
  // One line only: a document holding an array of records, or a single record.
  return !holdsArrayOfObjects(value);
}

function holdsArrayOfObjects(value: unknown): boolean {
  if (Array.isArray(value)) return value.some((v) => typeof v === 'object' && v !== null && !Array.isArray(v));
  if (typeof value !== 'object' || value === null) return false;
  return Object.values(value).some(holdsArrayOfObjects);
}

/** Whether bytes start like a zip archive (as an XLSX workbook does). */
export function isZipMagic(head: Buffer): boolean {
  return head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04;
}

/** Whether bytes start like an old binary Office file (.xls): pgferry cannot read those. */
export function isOleMagic(head: Buffer): boolean {
  return head[0] === 0xd0 && head[1] === 0xcf && head[2] === 0x11 && head[3] === 0xe0;
}
