import type pg from 'pg';

/**
 * pgferry's roles whose database is gone: what a test run left behind on the server. Each
 * role pgferry makes is commented `pgferry tenant … of database NAME` (the group:
 * `pgferry tenant roles of database NAME`), so this holds on a server other runs share too:
 * their databases still exist. For the global teardown (no vitest import here).
 */
export async function leftoverTenantRoles(client: pg.ClientBase): Promise<string[]> {
  const { rows } = await client.query<{ rolname: string }>(
    `select r.rolname
     from pg_roles r
     cross join lateral substring(shobj_description(r.oid, 'pg_authid') from '^pgferry tenant .* of database (.+)$') as d(datname)
     where left(r.rolname, 4) = 'pgf_'
       and d.datname is not null
       and d.datname not in (select datname from pg_database)
     order by 1`,
  );
  return rows.map((r) => r.rolname);
}
