import type pg from 'pg';

/**
 * Where staging goes on after a crash or a lost connection: after the load's checkpoint
 * (ferry.resume_staging, which resets it to line 0 when the staging was lost).
 */
export async function stagingCheckpoint(
  pool: pg.Pool,
  loadId: number,
): Promise<{ step: 'stage'; afterLine: number; rowsStaged: number }> {
  const { rows } = await pool.query<{ checkpoint_line: string; rows_staged: string }>(
    'select * from ferry.resume_staging($1)',
    [loadId],
  );
  return { step: 'stage', afterLine: Number(rows[0].checkpoint_line), rowsStaged: Number(rows[0].rows_staged) };
}

/** Whether a server crash emptied the load's staging table since its checkpoint. */
export async function stagingLost(pool: pg.Pool, loadId: number): Promise<boolean> {
  const { rows } = await pool.query<{ lost: boolean }>('select ferry.staging_lost($1) as lost', [loadId]);
  return rows[0].lost;
}
