-- `pgferry tenant purge`: a tenant removed whole, for a customer that leaves. Its rows in every
-- protected table (deleted as the tenant, children first), its policies, its staging schema,
-- its role, and everything the catalog holds of it (loads with their rejects and undo logs,
-- syncs, restores, audit lines), but for one audit line that says it was purged, when, by
-- whom and how many rows of each table went. Other tenants are not touched.

-- What a purge of p_tenant would delete, a line each: the rows of each protected table
-- (counted as the tenant), its policies, schema and role, and its catalog rows.
create or replace function ferry.purge_plan(p_tenant text)
returns table (kind text, object text, detail text)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant ferry.tenants := ferry.tenant(p_tenant);
  v_table  record;
begin
  for v_table in select * from ferry.protected_tables_in_order() order by ordinal desc loop
    return query select 'rows', format('%I.%I', v_table.schema_name, v_table.table_name),
                        format('%s rows', ferry.tenant_row_count(v_tenant, v_table.schema_name, v_table.table_name));
  end loop;
  return query
    select 'policies', format('%I.%I', p.schema_name, p.table_name),
           format('pgferry_tenant_%s, pgferry_only_%s', v_tenant.slug, v_tenant.slug)
    from ferry.protected_tables p order by 2;
  return query
    select 'schema', v_tenant.schema_name::text,
           format('%s tables, %s functions',
                  (select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
                   where n.nspname = v_tenant.schema_name and c.relkind in ('r', 'p')),
                  (select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                   where n.nspname = v_tenant.schema_name));
  return query select 'role', v_tenant.role_name::text, 'dropped, with its privileges';
  return query
    select 'catalog', x.what, x.n::text || ' rows'
    from (values
      ('ferry.tenants', 1::bigint),
      ('ferry.loads', (select count(*) from ferry.loads where tenant_id = v_tenant.id)),
      ('ferry.undo', (select count(*) from ferry.undo u join ferry.loads l on l.id = u.load_id where l.tenant_id = v_tenant.id)),
      ('ferry.syncs', (select count(*) from ferry.syncs where tenant_id = v_tenant.id)),
      ('ferry.restores', (select count(*) from ferry.restores where tenant_id = v_tenant.id)),
      ('ferry.audit', (select count(*) from ferry.audit where tenant = v_tenant.slug))) as x (what, n);
end
$$;

-- Purges tenant p_tenant (see above), in the caller's transaction. Refuses while one of its
-- loads runs. Returns {tables: [{table, rows}], schema, role, catalog: {...}}, which the audit
-- line keeps too.
create or replace function ferry.purge_tenant(p_tenant text, p_os_user text) returns jsonb
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant  ferry.tenants := ferry.tenant(p_tenant);
  v_table   record;
  v_tables  jsonb := '[]';
  v_running bigint;
  v_catalog jsonb;
  v_result  jsonb;
begin
  perform ferry.lock_row('tenant', v_tenant.slug);
  perform ferry.lock_tenant_targets(v_tenant.slug);
  select l.id into v_running
  from ferry.loads l
  where l.tenant_id = v_tenant.id and l.status in ('registered', 'staging', 'transforming', 'promoting')
    and ferry.load_is_claimed(l.id)
  limit 1;
  if v_running is not null then
    raise exception 'load % of tenant % is running', v_running, v_tenant.slug
      using errcode = '55006', hint = format('wait for it, or: pgferry cancel %s', v_running);
  end if;

  for v_table in select * from ferry.protected_tables_in_order() order by ordinal desc loop
    v_tables := v_tables || jsonb_build_object(
      'table', format('%I.%I', v_table.schema_name, v_table.table_name),
      'rows', ferry.as_tenant_exec(v_tenant, format('delete from %I.%I where %I = %L::%s',
                v_table.schema_name, v_table.table_name, v_table.tenant_column, v_tenant.tenant_key, v_table.tenant_type)));
    execute format('drop policy if exists %I on %I.%I', 'pgferry_tenant_' || v_tenant.slug, v_table.schema_name, v_table.table_name);
    execute format('drop policy if exists %I on %I.%I', 'pgferry_only_' || v_tenant.slug, v_table.schema_name, v_table.table_name);
  end loop;

  v_catalog := jsonb_build_object(
    'loads', (select count(*) from ferry.loads where tenant_id = v_tenant.id),
    'syncs', (select count(*) from ferry.syncs where tenant_id = v_tenant.id),
    'restores', (select count(*) from ferry.restores where tenant_id = v_tenant.id),
    'audit', (select count(*) from ferry.audit where tenant = v_tenant.slug));
  delete from ferry.undo where load_id in (select id from ferry.loads where tenant_id = v_tenant.id);
  delete from ferry.syncs where tenant_id = v_tenant.id;
  delete from ferry.restores where tenant_id = v_tenant.id;
  delete from ferry.loads where tenant_id = v_tenant.id;
  delete from ferry.audit where tenant = v_tenant.slug;
  -- The rows its transactions took turns on (their row locks were the locks).
  delete from ferry.coordination_locks
  where (purpose = 'tenant' and subject = v_tenant.slug)
     or (purpose = 'as_tenant' and subject = v_tenant.schema_name)
     or (purpose = 'target' and left(subject, length(v_tenant.slug) + 1) = v_tenant.slug || ':');
  delete from ferry.tenants where id = v_tenant.id;

  execute format('drop schema if exists %I cascade', v_tenant.schema_name);
  -- Its large objects, functions anywhere, and the privileges granted to it (tables,
  -- sequences, schemas): a role with any of them cannot be dropped.
  execute format('drop owned by %I', v_tenant.role_name);
  execute format('drop role %I', v_tenant.role_name);

  v_result := jsonb_build_object('tables', v_tables, 'schema', v_tenant.schema_name, 'role', v_tenant.role_name,
                                 'catalog', v_catalog);
  insert into ferry.audit (os_user, command, tenant, outcome, details)
  values (p_os_user, 'tenant purge', v_tenant.slug, 'purged', v_result);
  return v_result;
end
$$;
