import type pg from 'pg';

/** cleanup: drops the load's staging and work tables (ferry.cleanup_load). */
export async function cleanup(pool: pg.Pool, loadId: number): Promise<void> {
  await pool.query('select ferry.cleanup_load($1)', [loadId]);
}
