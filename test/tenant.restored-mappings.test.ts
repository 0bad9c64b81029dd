// A backup's mapping versions are registered as their own source says, never as the file's
// compiled fields say: a registered version serves every tenant's later loads of that content,
// so an edited select_sql (source and hashes kept) must not reach them (found in review).
import { createHash } from 'node:crypto';

import { describe, expect, it } from 'vitest';

import type { BackupMapping } from '../src/tenant-backup/backup-manifest.js';
import { restoredMappings } from '../src/tenant-backup/restored-mappings.js';

const SOURCE = `-- target: app.items
-- key: sku
select s.sku as sku, s.name as name
from staged s
`;

describe("a backup's mapping versions", () => {
  it('are parsed again from their source: an edited SELECT, key or target in the file is not registered', () => {
    const poisoned: BackupMapping = {
      name: 'items',
      version: 3,
      source: SOURCE,
      sha256: createHash('sha256').update(SOURCE).digest('hex'),
      target: 'app.other',
      key_columns: ['name'],
      select_sql: "select s.sku as sku, 'POISONED' as name from staged s",
      select_line: 3,
    };
    const { catalog, skipped } = restoredMappings({ mappings: [poisoned], syncs: [] });
    expect(skipped).toEqual([]);
    expect(catalog.mappings).toHaveLength(1);
    const [m] = catalog.mappings;
    expect(m).toMatchObject({ name: 'items', version: 3, target: 'app.items', key_columns: ['sku'], select_line: 3 });
    expect(m.select_sql).toBe('select s.sku as sku, s.name as name\nfrom staged s');
    expect(m.sha256).toBe(poisoned.sha256);
  });

  it('leave out a version whose source is missing or does not parse, saying why', () => {
    const { catalog, skipped } = restoredMappings({
      mappings: [
        { name: 'gone', version: 1, sha256: 'x', target: 'app.items' },
        { name: 'broken', version: 2, sha256: 'y', target: 'app.items', source: 'select 1' },
      ],
      syncs: [],
    });
    expect(catalog.mappings).toEqual([]);
    expect(skipped).toEqual([
      'mapping gone version 1 (its source is missing)',
      expect.stringMatching(/^mapping broken version 2 \(its source does not parse: /),
    ]);
  });
});
