import type pg from 'pg';

import { recordAudit } from '../audit.js';
import { withTransaction } from '../db/database.js';
import { loadCounts } from './load-counts.js';
import type { LoadRun } from './load-run.js';
import { thresholdProblem } from './reject-threshold.js';
import { promote } from './steps/promote.js';
import { verify } from './steps/verify.js';
import type { Step, SyncOutcome } from './types.js';

/** How a promotion ended: committed, a dry run's (undone), or undone for crossing a reject threshold. */
export type PromotionOutcome =
  | { status: 'succeeded'; sync?: SyncOutcome; audited: true }
  | { status: 'dry_run' }
  | { status: 'failed'; failure: string };

/**
 * The promotion: promote and verify in one transaction, so that the target has all of the
 * load or none of it. A dry run, or a load that crossed a reject threshold once its promotion
 * found its own rejects, is rolled back to before the promotion, keeping those rejects.
 */
export async function promoteAndVerify(
  pool: pg.Pool,
  run: LoadRun,
  rowsRead: number,
  timed: <T>(step: Step, fn: () => Promise<T>) => Promise<T>,
): Promise<PromotionOutcome> {
  const { loadId, options, emit } = run;
  return withTransaction(
    pool,
    async (client) => {
      // The fence: refuses if another process took the load over, and holds the load's row
      // until this transaction ends, so that no takeover comes in between.
      await client.query('select ferry.check_claim($1, $2)', [loadId, run.claim.epoch]);
      // Before the savepoint: the target's lock is a row lock, which a rollback to the savepoint
      // would release.
      await lockTarget(client, run);
      await client.query('savepoint pgferry_promotion');
      // finish_promotion (the undo log and rejects copied to the catalog) is promotion too.
      await timed('promote', () =>
        promote(client, loadId, {
          batchSize: options.batchSize,
          onBatch: (done, total) => emit({ type: 'promote-progress', done, total }),
        }),
      );
      const { rejected } = await timed('verify', () => verify(client, loadId));
      const limitAfter = thresholdProblem(rejected, rowsRead, options);
      if (limitAfter || options.dryRun) {
        await undoKeepingRejects(client, loadId, { keepCounts: options.dryRun ?? false });
        return limitAfter ? { status: 'failed', failure: limitAfter } : { status: 'dry_run' };
      }
      let sync: SyncOutcome | undefined;
      if (options.sync) {
        // The sync's cursor moves in the transaction that promotes what it pulled.
        const { rows } = await client.query<{ outcome: SyncOutcome }>('select ferry.finish_sync($1) as outcome', [
          loadId,
        ]);
        sync = rows[0].outcome;
      }
      await client.query(`select ferry.set_status($1, 'succeeded')`, [loadId]);
      // The audit line commits with the rows: a process killed right after the commit leaves
      // a succeeded load with its audit line (resume then finds it done and writes nothing).
      await recordAudit(client, {
        command: 'load',
        tenant: options.tenant,
        loadId,
        outcome: 'succeeded',
        details: { counts: await loadCounts(client, loadId) },
      });
      return { status: 'succeeded', sync, audited: true };
    },
    { tenantCode: true },
  );
}

/** Takes the tenant+target lock, saying which load holds it while waiting. */
async function lockTarget(client: pg.ClientBase, run: LoadRun): Promise<void> {
  // Names this session for whoever waits for the same tenant and table.
  await client.query(`select set_config('application_name', $1, true)`, [`pgferry load ${run.loadId}`]);
  const { rows } = await client.query<{ holder: string | null }>('select ferry.try_lock_target($1) as holder', [
    run.loadId,
  ]);
  if (rows[0].holder !== null) run.emit({ type: 'waiting', forLoad: Number(rows[0].holder) });
}

/**
 * Rolls back to before the promotion, keeping the rejects found while promoting; a dry run
 * keeps its counts too (what it would have done).
 */
async function undoKeepingRejects(
  client: pg.ClientBase,
  loadId: number,
  { keepCounts }: { keepCounts: boolean },
): Promise<void> {
  const { rows: kept } = await client.query(
    `select line, column_name, value, rule, message, raw from ferry.rejects where load_id = $1 and step = 'promote'`,
    [loadId],
  );
  const counts = await client.query('select * from ferry.loads where id = $1', [loadId]);
  await client.query('rollback to savepoint pgferry_promotion');
  for (const r of kept) {
    await client.query(`select ferry.add_reject($1, 'promote', $2, $3, $4, $5, $6, $7)`, [
      loadId,
      r.line,
      r.column_name,
      r.value,
      r.rule,
      r.message,
      r.raw,
    ]);
  }
  if (keepCounts) {
    const row = counts.rows[0];
    await client.query(
      `update ferry.loads set inserted = $2, updated = $3, unchanged = $4, parse_rejects = $5,
       rows_rejected = $6, duplicates = $7 where id = $1`,
      [loadId, row.inserted, row.updated, row.unchanged, row.parse_rejects, row.rows_rejected, row.duplicates],
    );
  }
}
