import { sql } from 'kysely';
import type pg from 'pg';

import type { RejectRow } from '../catalog.js';
import { rejectLocator } from '../report/reject-location.js';
import { catalogDb } from './catalog-db.js';
import { requireLoad } from './require-load.js';

/** One reject as the load page's table shows it: as `pgferry rejects` lists one. */
export type DashboardReject = RejectRow;

export interface DashboardRejectsPage {
  /** Rejects that match the search, on every page. */
  total: number;
  page: number;
  pageSize: number;
  rows: DashboardReject[];
}

export interface DashboardRejectsOptions {
  tenant?: string;
  /** 1-based (default 1). */
  page?: number;
  /** Default 50, at most 500. */
  pageSize?: number;
  /** Only rejects whose line, rule, column, value, message or raw text contains this (any case). */
  q?: string;
}

/**
 * A page of a load's rejects (`GET /api/loads/ID/rejects?page=&q=`), by line. Lines superseded
 * as duplicates are counted among the reject reasons, not listed here. NotFound when there is
 * no such load, or it is not the tenant's.
 *
 * @example
 *   const { total, rows } = await dashboardRejects(pool, 42, { q: 'price', page: 2 });
 */
export async function dashboardRejects(
  pool: pg.Pool,
  loadId: number,
  options: DashboardRejectsOptions = {},
): Promise<DashboardRejectsPage> {
  const db = catalogDb(pool);
  await requireLoad(db, loadId, options.tenant);

  const page = Math.max(1, Math.floor(options.page ?? 1));
  const pageSize = Math.min(Math.max(1, Math.floor(options.pageSize ?? 50)), 500);
  let matching = db.selectFrom('ferry.rejects as r').where('r.load_id', '=', String(loadId));
  const q = options.q?.trim();
  if (q) {
    // A literal search: % and _ in what was typed mean themselves.
    const pattern = `%${q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    matching = matching.where(
      sql<string>`concat_ws(' ', r.line::text, r.rule, r.column_name, r.value, r.message, r.raw)`,
      'ilike',
      pattern,
    );
  }
  const [{ total }] = await matching.select((eb) => eb.fn.countAll<string>().as('total')).execute();
  const rows = await matching
    .select(['r.line', 'r.step', 'r.rule', 'r.column_name', 'r.value', 'r.message', 'r.raw'])
    .orderBy(sql`r.line nulls last`)
    .orderBy('r.id')
    .limit(pageSize)
    .offset((page - 1) * pageSize)
    .execute();
  const locate = await rejectLocator(pool, loadId);
  return {
    total: Number(total),
    page,
    pageSize,
    rows: rows.map((r) => {
      const line = r.line === null ? null : Number(r.line);
      return {
        line,
        where: locate(line, r.column_name),
        step: r.step,
        rule: r.rule,
        column: r.column_name,
        value: r.value,
        message: r.message,
        raw: r.raw,
      };
    }),
  };
}
