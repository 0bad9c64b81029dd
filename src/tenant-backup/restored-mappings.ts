import { parseMapping } from '../mappings/mapping-file.js';
import type { BackupHeader, BackupMapping } from './backup-manifest.js';

/**
 * The backup's mapping versions as a load would register them: each parsed again from its
 * own source text, so that the compiled parts (SELECT, key, checks, target) and the SHA-256
 * are what that source says, not what the file claims. A mapping version registered here is
 * used by every later load whose mapping file has that content, any tenant's: a file whose
 * `select_sql` had been edited (its source and hashes kept) must not change what they run.
 * A version whose source does not parse is left out, with the reason.
 */
export function restoredMappings(catalog: BackupHeader['catalog']): {
  catalog: BackupHeader['catalog'];
  skipped: string[];
} {
  const mappings: BackupMapping[] = [];
  const skipped: string[] = [];
  for (const m of catalog.mappings ?? []) {
    const name = String(m.name);
    if (typeof m.source !== 'string') {
      skipped.push(`mapping ${name} version ${m.version} (its source is missing)`);
      continue;
    }
    try {
      const parsed = parseMapping(m.source, `${name}.sql`);
      mappings.push({
        ...m,
        name: parsed.name,
        sha256: parsed.sha256,
        target: parsed.target,
        key_columns: parsed.keyColumns,
        on_conflict: parsed.onConflict,
        duplicates: parsed.duplicates,
        checks: parsed.checks,
        select_sql: parsed.selectSql,
        select_line: parsed.selectLine,
      });
    } catch (error) {
      skipped.push(`mapping ${name} version ${m.version} (its source does not parse: ${(error as Error).message})`);
    }
  }
  return { catalog: { ...catalog, mappings }, skipped };
}
