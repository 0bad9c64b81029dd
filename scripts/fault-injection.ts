// The faults the fault harness injects into a running load: one of its connections ended
// (pg_terminate_backend, as an idle cut-off or a proxy would), the server restarted (fast or
// immediate, after an outage), or the worker running it killed (SIGKILL).
import type pg from 'pg';

/**
 * The backends of processes whose connections are named `applicationName`, told apart: the
 * one holding a load's claim (its session advisory lock), and the others (a step's).
 */
async function loadBackends(
  pool: pg.Pool,
  loadId: number,
  applicationName: string,
): Promise<{ claims: number[]; steps: number[] }> {
  const { rows } = await pool.query<{ pid: number; is_claim: boolean }>(
    `select a.pid, exists (
              select from pg_locks l, ferry.load_claim_key($1) as k(key)
              where l.pid = a.pid and l.locktype = 'advisory' and l.granted and l.objsubid = 1
                and l.classid = ((k.key >> 32) & 4294967295)::oid and l.objid = (k.key & 4294967295)::oid
            ) as is_claim
     from pg_stat_activity a
     where a.datname = current_database() and a.application_name = $2
       and a.backend_type = 'client backend'`,
    [loadId, applicationName],
  );
  return {
    claims: rows.filter((r) => r.is_claim).map((r) => r.pid),
    steps: rows.filter((r) => !r.is_claim).map((r) => r.pid),
  };
}

/**
 * Terminates the load's claim connection, or one of its step connections, if it still has
 * one; returns false when there was none (the load had ended, or was between steps).
 */
export async function cutConnection(
  pool: pg.Pool,
  loadId: number,
  applicationName: string,
  which: 'claim' | 'step',
): Promise<boolean> {
  const { claims, steps } = await loadBackends(pool, loadId, applicationName);
  const victims = which === 'claim' ? claims : steps;
  if (victims.length === 0) return false;
  await pool.query('select pg_terminate_backend($1)', [victims[Math.floor(Math.random() * victims.length)]]);
  return true;
}

/** The process id in a load's `claimed_by` ("host pid 123 (runner)"), if it has been claimed. */
export async function claimantPid(pool: pg.Pool, loadId: number): Promise<number | undefined> {
  const { rows } = await pool.query<{ claimed_by: string | null }>('select claimed_by from ferry.loads where id = $1', [
    loadId,
  ]);
  const pid = / pid (\d+)/.exec(rows[0]?.claimed_by ?? '')?.[1];
  return pid ? Number(pid) : undefined;
}

/** What the server is doing for a stuck run: the load's row and every session on its database. */
export async function diagnostics(pool: pg.Pool, loadId: number): Promise<string> {
  try {
    const { rows: load } = await pool.query(
      'select status, ferry.load_status(l) as shown, claim_epoch, claimed_by, error from ferry.loads l where id = $1',
      [loadId],
    );
    const { rows: sessions } = await pool.query(
      `select a.pid, a.application_name as app, a.state, a.wait_event_type || ':' || a.wait_event as wait,
              round(extract(epoch from now() - a.query_start))::int as secs, left(a.query, 80) as query,
              pg_blocking_pids(a.pid) as blocked_by
       from pg_stat_activity a
       where a.datname = current_database() and a.pid <> pg_backend_pid() and a.backend_type = 'client backend'`,
    );
    return `load ${JSON.stringify(load[0])}; sessions ${JSON.stringify(sessions)}`;
  } catch (error) {
    return `(no diagnostics: ${(error as Error).message})`;
  }
}
