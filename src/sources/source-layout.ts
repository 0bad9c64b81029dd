import type { Compression } from './file/input-file.js';
import type { SourceFormat } from './source-format.js';

/**
 * How pgferry reads one source, found before anything is staged and kept with the load (so that
 * resume reads it the same way): a file's wrapper, format, encoding, and its columns, or a
 * source database's query and columns. readSourceLayout finds a file's, readDatabaseLayout a
 * database's; the readers take it to open the source.
 */
export interface SourceLayout {
  /** A file's format, or the kind of source database (`load --from`). */
  format: Exclude<SourceFormat, 'tsv'> | 'postgres' | 'mysql';
  /** A source database: `env:NAME` or its URL without the password (never the URL itself). */
  from?: string;
  /** A source database: the SELECT read. */
  query?: string;
  compression: Compression;
  entry?: string;
  /** Text formats: the encoding, and the byte order mark's length. */
  encoding?: string;
  /** Text formats: why that encoding (`given by --encoding`, `valid UTF-8 but 1 invalid byte (line 17: rejected)`). */
  encodingReason?: string;
  bomBytes?: number;
  delimiter?: string;
  /** XLSX: the sheet's name (or position, when the workbook is gzipped and was not opened). */
  sheet?: string | number;
  headerRow?: number;
  records?: string;
  table?: string;
  /** The source's column names as it writes them (staged names are derived from these). */
  columns: string[];
  /** XLSX: each column's letter, for cell addresses. */
  letters?: string[];
}
