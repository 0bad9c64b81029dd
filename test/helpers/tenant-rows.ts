import type pg from 'pg';

/**
 * How many rows of one tenant and of a reference tenant tell them apart, compared on `columns`
 * (EXCEPT ALL both ways): 0 when the two hold the same rows, duplicates included. `table` and
 * `columns` are the caller's constants, spliced into the SQL as they are.
 */
export async function rowsDifferingFrom(
  pool: pg.Pool,
  table: string,
  columns: readonly string[],
  tenant: string,
  reference: string,
): Promise<number> {
  const select = `select ${columns.join(', ')} from ${table} where tenant_id =`;
  const { rows } = await pool.query<{ n: number }>(
    `select count(*)::int as n from (
       (${select} $1 except all ${select} $2)
       union all
       (${select} $2 except all ${select} $1)
     ) d`,
    [tenant, reference],
  );
  return rows[0].n;
}

/**
 * The status `pgferry loads` shows for a load, once it is `expected` or after 5 s: a killed
 * process's claim goes when the server notices its closed connection, within moments.
 */
export async function statusOnceSettled(pool: pg.Pool, loadId: number, expected: string): Promise<string> {
  let status = '';
  for (let i = 0; i < 50; i++) {
    const { rows } = await pool.query('select ferry.load_status(l) as status from ferry.loads l where id = $1', [
      loadId,
    ]);
    status = rows[0].status;
    if (status === expected) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return status;
}
