import type { Kysely } from 'kysely';

import type { CatalogTables } from './catalog-tables.js';
import { NotFound } from './not-found.js';

/** Throws NotFound unless the load exists and, with a tenant, is that tenant's. */
export async function requireLoad(
  db: Kysely<CatalogTables>,
  loadId: number,
  tenant: string | undefined,
): Promise<void> {
  let owner = db
    .selectFrom('ferry.loads as l')
    .innerJoin('ferry.tenants as t', 't.id', 'l.tenant_id')
    .select('l.id')
    .where('l.id', '=', String(loadId));
  if (tenant !== undefined) owner = owner.where('t.slug', '=', tenant);
  if (!(await owner.executeTakeFirst())) throw new NotFound(`no load ${loadId}`);
}
