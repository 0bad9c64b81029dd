import type pg from 'pg';

import { listMappings, type MappingVersion } from '../catalog.js';
import { PgferryError } from '../errors.js';

/**
 * `pgferry mapping show`: one version of a registered mapping (the latest unless `version`
 * says which) — its header, its source and the SQL compiled for its latest load. A mapping
 * not registered yet (it is, by its first load), or a version it does not have, is a
 * PgferryError whose hint says which versions there are.
 *
 * @example
 *   const mapping = await showMapping(pool, 'products');
 *   console.log(mapping.version, mapping.compiledSql);
 */
export async function showMapping(
  pool: pg.Pool,
  name: string,
  options: { version?: number } = {},
): Promise<MappingVersion> {
  const versions = await listMappings(pool, name);
  const chosen = options.version === undefined ? versions[0] : versions.find((v) => v.version === options.version);
  if (chosen) return chosen;
  throw new PgferryError(
    versions.length === 0
      ? `no mapping ${name} in the catalog yet`
      : `mapping ${name} has no version ${options.version}`,
    {
      hint:
        versions.length === 0
          ? 'a mapping is registered and compiled by its first load'
          : `versions: ${versions.map((v) => v.version).join(', ')}`,
    },
  );
}
