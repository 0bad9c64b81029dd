import { readdirSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { MIGRATIONS_DIR } from '../src/db/migrate.js';
import { createTestDatabase } from './helpers/test-database.js';

const db = await createTestDatabase();

describe('the ferry schema', () => {
  it('has exactly the migrations this test pins (a new migration updates the count and the snapshot)', async () => {
    const files = readdirSync(MIGRATIONS_DIR)
      .filter((f) => f.endsWith('.sql'))
      .sort((a, b) => parseInt(a, 10) - parseInt(b, 10));
    expect(files).toEqual([
      '1_catalog.sql',
      '2_tenants.sql',
      '3_loads.sql',
      '4_compile.sql',
      '5_steps.sql',
      '6_faster_checks_and_promotion.sql',
      '7_rollback.sql',
      '8_load_liveness.sql',
      '9_resume.sql',
      '10_export.sql',
      '11_queue_and_progress.sql',
      '12_syncs.sql',
      '13_plans.sql',
      '14_concurrent_compiles.sql',
      '15_faster_increments.sql',
      '16_promotion_functions.sql',
      '17_undo_from_promote_batch.sql',
      '18_undo_a_row_a_batch.sql',
      '19_staging_lost_in_a_crash.sql',
      '20_cancel_takes_the_claim.sql',
    ]);
    const { rows } = await db.pool.query('select id, name from ferry.migrations order by id');
    expect(rows.map((r) => r.name)).toEqual([
      'create-migrations-table',
      'catalog',
      'tenants',
      'loads',
      'compile',
      'steps',
      'faster_checks_and_promotion',
      'rollback',
      'load_liveness',
      'resume',
      'export',
      'queue_and_progress',
      'syncs',
      'plans',
      'concurrent_compiles',
      'faster_increments',
      'promotion_functions',
      'undo_from_promote_batch',
      'undo_a_row_a_batch',
      'staging_lost_in_a_crash',
      'cancel_takes_the_claim',
    ]);
  });

  it('matches the committed snapshot of its tables, columns and functions', async () => {
    const { rows: columns } = await db.pool.query(`
      select format('%s.%s  %s %s%s%s', c.table_schema, c.table_name, c.column_name,
                    case when c.data_type in ('ARRAY', 'USER-DEFINED') then c.udt_name else c.data_type end,
                    case when c.is_nullable = 'NO' then ' not null' else '' end,
                    coalesce(' default ' || c.column_default, '')) as line
      from information_schema.columns c
      where c.table_schema in ('ferry', 'ferry_util')
      order by c.table_schema, c.table_name, c.ordinal_position`);
    const { rows: functions } = await db.pool.query(`
      select format('%s.%s(%s) returns %s', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid),
                    pg_get_function_result(p.oid)) as line
      from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname in ('ferry', 'ferry_util')
      order by 1`);
    const { rows: indexes } = await db.pool.query(`
      select indexdef as line from pg_indexes where schemaname = 'ferry' order by indexname`);
    const snapshot = [
      '-- tables and columns',
      ...columns.map((r) => r.line),
      '',
      '-- functions',
      ...functions.map((r) => r.line),
      '',
      '-- indexes',
      ...indexes.map((r) => r.line),
      '',
    ].join('\n');
    await expect(snapshot).toMatchFileSnapshot('./__snapshots__/ferry-schema.txt');
  });
});
