import type pg from 'pg';

import type { Project } from '../project/project-file.js';
import { nextRun } from './next-run.js';

/** A sync of pgferry.yaml with its state in the catalog, as `pgferry syncs` lists it. */
export interface SyncListing {
  name: string;
  tenant: string;
  mode: 'append' | 'upsert' | 'mirror';
  /** Its cron line (UTC); null for a sync run only by hand. */
  schedule: string | null;
  /** Its schedule is skipped until unpaused (a manual run still runs). */
  paused: boolean;
  /** Where its next increment starts; null before its first run, or without a cursor. */
  cursor: string | null;
  lastLoad: number | null;
  lastRun: Date | null;
  /** succeeded, failed, interrupted, …; null if it never ran. */
  lastOutcome: string | null;
  lastError: string | null;
  /** When its schedule fires next; null if paused, manual, or not within a year. */
  nextRun: Date | null;
}

/**
 * `pgferry syncs`: every sync the project declares, in its order, with its cursor, its last
 * run and outcome, and its next run. A sync that never ran is listed too (not run, no cursor).
 *
 * @example
 *   const project = await readProject('pgferry.yaml');
 *   for (const sync of await listSyncs(pool, project)) console.log(sync.name, sync.cursor, sync.nextRun);
 */
export async function listSyncs(pool: pg.Pool, project: Project): Promise<SyncListing[]> {
  const { rows: states } = await pool.query(
    `select s.name, s.paused_at, st.cursor, st.last_load_id, st.last_finished_at, st.last_outcome, st.last_error
     from ferry.syncs s left join ferry.sync_state st on st.sync_name = s.name`,
  );
  const byName = new Map(states.map((r) => [r.name as string, r]));
  return [...project.syncs.values()].map((sync) => {
    const s = byName.get(sync.name);
    const paused = Boolean(s?.paused_at);
    return {
      name: sync.name,
      tenant: sync.tenant,
      mode: sync.mode,
      schedule: sync.schedule ?? null,
      paused,
      cursor: (s?.cursor as string | null) ?? null,
      lastLoad: s?.last_load_id == null ? null : Number(s.last_load_id),
      lastRun: (s?.last_finished_at as Date | null) ?? null,
      lastOutcome: (s?.last_outcome as string | null) ?? null,
      lastError: (s?.last_error as string | null) ?? null,
      nextRun: sync.schedule && !paused ? nextRun(sync.schedule) : null,
    };
  });
}
