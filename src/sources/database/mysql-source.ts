import mysql from 'mysql2';

import { PgferryError } from '../../errors.js';
import type { SourceItem } from '../reader-items.js';

/**
 * A connection to a source MySQL or MariaDB, in a read-only transaction with a consistent
 * snapshot. Values are read as the bytes MySQL sends (see readMysqlRecords), never through
 * JavaScript numbers or Dates.
 */
export async function openMysqlSource(url: string, display: string): Promise<mysql.Connection> {
  const connection = mysql.createConnection({
    uri: url,
    charset: 'utf8mb4',
  });
  connection.on('error', () => {});
  try {
    await connection.promise().query('start transaction with consistent snapshot, read only');
  } catch (error) {
    connection.destroy();
    throw new PgferryError(`cannot read the source ${display}: ${(error as Error).message}`);
  }
  return connection;
}

/** A source column: its name, and what says how to read its bytes. */
export interface MysqlColumn {
  name: string;
  type: number;
  charset: number;
  length: number;
}

/** The columns of the source query (the query is wrapped with `limit 0`). */
export async function describeMysqlQuery(
  connection: mysql.Connection,
  query: string,
  display: string,
): Promise<MysqlColumn[]> {
  try {
    const [, fields] = await connection.promise().query(`select * from (\n${query}\n) as source limit 0`);
    return (fields ?? []).map((field) => ({
      name: field.name,
      type: field.columnType ?? 0,
      charset: field.characterSet ?? 0,
      length: field.columnLength ?? 0,
    }));
  } catch (error) {
    throw new PgferryError(`the source ${display} refused the query: ${(error as Error).message}`);
  }
}

/**
 * The rows of a MySQL query as records for staging, streamed (the driver reads them as they
 * come, with backpressure), every value from its bytes as the text PostgreSQL reads:
 * - text as UTF-8 (the connection's utf8mb4);
 * - zero dates (`0000-00-00`, `0000-00-00 00:00:00`) as NULL: MySQL's "no date";
 * - binary strings and blobs as `\x…` hex, bytea's input;
 * - `BIT(n)` as its bits (`0101`);
 * - `TINYINT(1)` (MySQL's BOOLEAN) 0 and 1, and `BIT(1)`, as `false`/`true` (other TINYINT(1)
 *   values as their number):
 *   booleans are staged alike from every source (PostgreSQL, JSON, XLSX), so one mapping
 *   serves them all.
 * `line` is the row's position (1-based).
 */
export async function* readMysqlRecords(
  connection: mysql.Connection,
  query: string,
  columns: MysqlColumn[],
): AsyncGenerator<SourceItem> {
  // Raw bytes for every value: how to read them is the column's, known from describeMysqlQuery.
  const stream = connection.query({ sql: query, rowsAsArray: true, typeCast: false }).stream({ highWaterMark: 1000 });
  const readers = columns.map(valueReader);
  let line = 0;
  for await (const row of stream as AsyncIterable<(Buffer | null)[]>) {
    const values = row.map((bytes, i) => (bytes === null ? null : readers[i](bytes)));
    yield { kind: 'record', line: ++line, values };
  }
}

const BINARY_CHARSET = 63;
const { Types } = mysql;
const BINARY_TYPES = new Set([
  Types.BLOB,
  Types.TINY_BLOB,
  Types.MEDIUM_BLOB,
  Types.LONG_BLOB,
  Types.STRING,
  Types.VAR_STRING,
  Types.VARCHAR,
  Types.GEOMETRY,
]);
const DATE_TYPES = new Set([Types.DATE, Types.DATETIME, Types.TIMESTAMP, Types.NEWDATE]);

function valueReader(column: MysqlColumn): (bytes: Buffer) => string | null {
  if (column.type === Types.TINY && column.length === 1) {
    // Only 0 and 1 are booleans: a TINYINT(1) used as a small number keeps its other values,
    // which a boolean column then rejects rather than reading them as true.
    return (bytes) => {
      const text = bytes.toString('latin1');
      return text === '0' ? 'false' : text === '1' ? 'true' : text;
    };
  }
  if (column.type === Types.BIT && column.length === 1) {
    return (bytes) => (bytes.every((b) => b === 0) ? 'false' : 'true');
  }
  if (column.type === Types.BIT) {
    return (bytes) => {
      const bits = [...bytes].map((b) => b.toString(2).padStart(8, '0')).join('');
      return bits.slice(Math.max(0, bits.length - column.length));
    };
  }
  if (column.type === Types.GEOMETRY || (BINARY_TYPES.has(column.type) && column.charset === BINARY_CHARSET)) {
    return (bytes) => `\\x${bytes.toString('hex')}`;
  }
  if (DATE_TYPES.has(column.type)) {
    return (bytes) => {
      const text = bytes.toString('latin1');
      return text.startsWith('0000-00-00') ? null : text;
    };
  }
  return (bytes) => bytes.toString('utf8');
}
