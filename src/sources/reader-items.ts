/**
 * What every format reader yields, so that staging and every later step are format-blind.
 *
 * Readers of text formats (JSON, NDJSON, XML, SQL dumps) take the file as decoded text
 * chunks (`AsyncIterable<string>`), split anywhere, even inside a character pair or a token.
 * In that text, UNDECODABLE stands for bytes that were not valid in the file's encoding: a
 * record holding it is rejected with rule `encoding`, never staged as mojibake.
 */
export const UNDECODABLE = '\uDFFF';

/** A source's column names, for positional formats (XLSX): yielded once, before any record. */
export interface SourceColumns {
  kind: 'columns';
  names: string[];
  /** XLSX: the sheet read, for cell addresses in rejects. */
  sheet?: string;
  /** XLSX: each column's letter (`A`, `B`, … `AA`), parallel to `names`. */
  letters?: string[];
  /** XLSX: the sheet row holding the names. */
  row?: number;
}

/** One record to stage. */
export interface SourceRecord {
  kind: 'record';
  /**
   * The record's number as the staging table's `_line` keeps it and rejects show it: the line
   * for NDJSON, the sheet row for XLSX, the record's ordinal (1-based) for JSON arrays, XML
   * and SQL dumps. Strictly increasing within a file.
   */
  line: number;
  /**
   * Keyed formats (JSON, XML, SQL dumps): column name → value; absent keys are NULL.
   * Positional formats (XLSX): values parallel to the `columns` item's names.
   * Values are text as the file writes them (numbers keep every digit); null is SQL NULL.
   */
  values: Map<string, string | null> | (string | null)[];
}

/** A record that cannot be staged, and why; it never aborts the load. */
export interface SourceReject {
  kind: 'reject';
  line: number;
  /** e.g. `encoding`, `malformed_json`, `column_count`, `cell_error`, `record_too_large`. */
  rule: string;
  /** One sentence naming where: `line 7000: …`, `record 12 (line 340): …`, `Sheet1!C12: …`. */
  message: string;
  /** The offending text, cut to 64 KiB. */
  raw: string;
}

export type SourceItem = SourceColumns | SourceRecord | SourceReject;

/** Largest raw text kept in a reject. */
export const MAX_REJECT_RAW_CHARS = 64 * 1024;
