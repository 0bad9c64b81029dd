import type { ServerResponse } from 'node:http';

import type pg from 'pg';

import { PgferryError } from '../errors.js';
import { cancelLoad } from '../load/cancel-load.js';
import { rollback } from '../rollback.js';
import { catalogDb } from './catalog-db.js';
import { dashboardLoadDetail } from './dashboard-load-detail.js';
import { dashboardLoads } from './dashboard-loads.js';
import { dashboardPlans } from './dashboard-plans.js';
import { dashboardRejects } from './dashboard-rejects.js';
import { dashboardSyncs } from './dashboard-syncs.js';
import { dashboardWorkers } from './dashboard-workers.js';
import { NotFound } from './not-found.js';
import { rejectsCsvLines } from './rejects-csv.js';
import { requireLoad } from './require-load.js';

/** What the API needs to know of how the dashboard was started. */
export interface ApiScope {
  /** Every answer is limited to this tenant's loads and syncs. */
  tenant?: string;
  allowActions: boolean;
}

/** An answer the server sends: a status and a JSON body (or it already streamed the body). */
export type ApiAnswer = { status: number; json: unknown } | { streamed: true };

/**
 * Answers `/api/…`: GET reads (loads, a load, its rejects and their CSV, syncs, plans,
 * workers), POST actions (cancel a load, roll one back) when allowed. A path it does not know is a 404; a load that is not
 * there or not the tenant's is a 404 too.
 */
export async function answerApi(
  pool: pg.Pool,
  scope: ApiScope,
  method: string,
  url: URL,
  res: ServerResponse,
): Promise<ApiAnswer> {
  const path = url.pathname;
  const param = (name: string) => url.searchParams.get(name) ?? undefined;
  const whole = (name: string) => {
    const v = param(name);
    return v !== undefined && /^\d{1,9}$/.test(v) ? Number(v) : undefined;
  };
  const tenant = scope.tenant;
  let m: RegExpExecArray | null;
  try {
    if (method === 'POST') {
      if ((m = /^\/api\/loads\/(\d{1,18})\/cancel$/.exec(path))) {
        if (!scope.allowActions) return refuseAction();
        const loadId = Number(m[1]);
        await requireLoad(catalogDb(pool), loadId, tenant);
        return { status: 200, json: await cancelLoad(pool, loadId, { wait: false, osUser: 'pgferry dashboard' }) };
      }
      if ((m = /^\/api\/loads\/(\d{1,18})\/rollback$/.exec(path))) {
        if (!scope.allowActions) return refuseAction();
        const loadId = Number(m[1]);
        await requireLoad(catalogDb(pool), loadId, tenant);
        // Never forced from a page: rows changed since the load are conflicts, and nothing changes.
        return { status: 200, json: await rollback(pool, loadId) };
      }
      return { status: 404, json: { error: `no action ${path}` } };
    }
    if (path === '/api/about')
      return { status: 200, json: { tenant: tenant ?? null, allowActions: scope.allowActions } };
    if (path === '/api/loads') {
      // --tenant wins over a tenant filter: another tenant's name finds nothing.
      const wanted = param('tenant');
      if (tenant !== undefined && wanted !== undefined && wanted !== tenant) return { status: 200, json: [] };
      return {
        status: 200,
        json: await dashboardLoads(pool, { tenant: tenant ?? wanted, status: param('status'), limit: whole('limit') }),
      };
    }
    if ((m = /^\/api\/loads\/(\d{1,18})$/.exec(path))) {
      return { status: 200, json: await dashboardLoadDetail(pool, Number(m[1]), { tenant }) };
    }
    if ((m = /^\/api\/loads\/(\d{1,18})\/rejects$/.exec(path))) {
      const page = await dashboardRejects(pool, Number(m[1]), {
        tenant,
        page: whole('page'),
        pageSize: whole('pageSize'),
        q: param('q'),
      });
      return { status: 200, json: page };
    }
    if ((m = /^\/api\/loads\/(\d{1,18})\/rejects\.csv$/.exec(path))) {
      const lines = rejectsCsvLines(pool, Number(m[1]), { tenant });
      // The first line is read before answering: a load that is not there is still a 404.
      const first = await lines.next();
      res.writeHead(200, {
        'Content-Type': 'text/csv; charset=utf-8',
        'Content-Disposition': `attachment; filename="load-${m[1]}-rejects.csv"`,
      });
      if (!first.done) res.write(first.value);
      for await (const line of lines) if (!res.write(line)) await new Promise((r) => res.once('drain', r));
      res.end();
      return { streamed: true };
    }
    if (path === '/api/syncs') return { status: 200, json: await dashboardSyncs(pool, { tenant }) };
    if (path === '/api/plans') {
      if (tenant !== undefined) return { status: 403, json: { error: 'plans span tenants: not shown with --tenant' } };
      return { status: 200, json: await dashboardPlans(pool, { limit: whole('limit') }) };
    }
    if (path === '/api/workers') {
      if (tenant !== undefined)
        return { status: 403, json: { error: 'workers span tenants: not shown with --tenant' } };
      return { status: 200, json: await dashboardWorkers(pool) };
    }
    return { status: 404, json: { error: `no such page: ${path}` } };
  } catch (error) {
    if (error instanceof NotFound) return { status: 404, json: { error: error.message } };
    // A refusal the library explains (a load that cannot be rolled back): the user's to read.
    if (error instanceof PgferryError) return { status: 409, json: { error: error.message, hint: error.hint } };
    throw error;
  }
}

function refuseAction(): ApiAnswer {
  return { status: 403, json: { error: 'the dashboard is read-only: start it with --allow-actions' } };
}
