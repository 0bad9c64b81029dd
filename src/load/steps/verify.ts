import type pg from 'pg';

/**
 * verify: inside the promotion's transaction, ferry.verify_load records the load's final
 * reject counts and checks that its counts reconcile (read = staged + parse rejects; staged =
 * promoted + duplicates + rejected), raising when they do not. Returns the rows rejected in
 * all, parse rejects included, for the reject thresholds.
 */
export async function verify(client: pg.ClientBase, loadId: number): Promise<{ rejected: number }> {
  const { rows } = await client.query('select * from ferry.verify_load($1)', [loadId]);
  return { rejected: Number(rows[0].parse_rejects) + Number(rows[0].rows_rejected) };
}
