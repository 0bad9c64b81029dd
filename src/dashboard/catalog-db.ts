import { Kysely, PostgresDialect } from 'kysely';
import type pg from 'pg';

import type { CatalogTables } from './catalog-tables.js';

/**
 * A kysely view of the catalog over the caller's pool. Closing it (`destroy()`) leaves the pool
 * open: the pool belongs to whoever opened the database.
 */
export function catalogDb(pool: pg.Pool): Kysely<CatalogTables> {
  return new Kysely<CatalogTables>({
    dialect: new PostgresDialect({ pool: { connect: () => pool.connect(), end: async () => {} } }),
  });
}
