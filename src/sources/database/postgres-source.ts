import pg from 'pg';

import { connectionSettings } from '../../db/connection-config.js';
import { connectWithTlsFallback } from '../../db/tls-fallback.js';
import { PgferryError } from '../../errors.js';

/**
 * A connection to a source PostgreSQL, in a read-only, repeatable-read transaction: pgferry
 * never writes to a source, and the columns it describes are those it reads.
 */
export async function openPostgresSource(url: string, display: string): Promise<pg.Client> {
  let client: pg.Client;
  try {
    // The URL's sslmode and the PG* variables mean what they mean to psql.
    const settings = connectionSettings({ url });
    client = await connectWithTlsFallback(settings, async (config) => {
      const client = new pg.Client({ application_name: 'pgferry source', ...config });
      client.on('error', () => {});
      try {
        await client.connect();
      } catch (error) {
        await client.end().catch(() => {});
        throw error;
      }
      return client;
    });
  } catch (error) {
    // The driver's message names the host, never the password.
    throw new PgferryError(`cannot read the source ${display}: ${(error as Error).message}`, { cause: error });
  }
  try {
    await client.query('begin transaction isolation level repeatable read, read only');
    // Dates as ISO text whatever the source's settings: what the staging and a sync's cursor read.
    await client.query(`set local datestyle to 'ISO, YMD'`);
  } catch (error) {
    await client.end().catch(() => {});
    throw new PgferryError(`cannot read the source ${display}: ${(error as Error).message}`);
  }
  return client;
}

/** The column names of the source query, from the source itself (the query is not run). */
export async function describePostgresQuery(client: pg.Client, query: string, display: string): Promise<string[]> {
  return (await describePostgresColumns(client, query, display)).map((column) => column.name);
}

/** The columns of the source query with their type OIDs (the query is not run). */
export async function describePostgresColumns(
  client: pg.Client,
  query: string,
  display: string,
): Promise<{ name: string; typeId: number }[]> {
  try {
    const result = await client.query(`select * from (\n${query}\n) as source limit 0`);
    return result.fields.map((field) => ({ name: field.name, typeId: field.dataTypeID }));
  } catch (error) {
    throw new PgferryError(`the source ${display} refused the query: ${(error as Error).message}`);
  }
}
