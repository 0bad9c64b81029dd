-- Loads of one tenant compiling or registering a mapping at the same moment (found with plans).
--
-- Plans run loads of one tenant side by side (independent branches), and so may a worker
-- (loads of one tenant into different tables are different queues). Two loads of a tenant
-- compiling at once both dropped and created the tenant's as_tenant() (4_compile.sql): the
-- second create failed on pg_proc's unique index. Compiles of one tenant now take turns at
-- that point (a lock held until the compiling transaction ends, a moment later).
create or replace function ferry.install_as_tenant(p_tenant ferry.tenants) returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  perform pg_advisory_xact_lock(hashtextextended('pgferry:as_tenant:' || p_tenant.schema_name, 0));
  execute format('drop function if exists %I.as_tenant(text, boolean)', p_tenant.schema_name);
  execute format($f$
    create function %I.as_tenant(p_sql text, p_describe boolean)
    returns table (column_name name, type_oid oid, typmod integer)
    language plpgsql security definer set search_path = public, pg_temp
    as $body$
    declare
      v_cursor refcursor;
    begin
      open v_cursor for execute p_sql;
      close v_cursor;
      if p_describe then
        drop table if exists pg_temp.pgferry_describe;
        execute 'create temporary table pgferry_describe as ' || p_sql || ' with no data';
        return query
          select a.attname, a.atttypid, a.atttypmod
          from pg_catalog.pg_attribute a
          where a.attrelid = 'pg_temp.pgferry_describe'::regclass and a.attnum > 0 and not a.attisdropped
          order by a.attnum;
        drop table pg_temp.pgferry_describe;
      end if;
    end
    $body$
  $f$, p_tenant.schema_name);
  execute format('alter function %I.as_tenant(text, boolean) owner to %I', p_tenant.schema_name, p_tenant.role_name);
  perform ferry.restrict_to_loader(format('%I.as_tenant(text, boolean)', p_tenant.schema_name), p_tenant);
end
$$;

-- Likewise two loads registering the same new mapping at once both found no row for its
-- content and both inserted it as the next version: one failed on (name, version). They
-- now take turns (a lock held until the registering statement's transaction ends).
create or replace function ferry.register_mapping(
  p_name        text,
  p_source      text,
  p_sha256      text,
  p_source_path text,
  p_target      text,
  p_key_columns text[],
  p_on_conflict text,
  p_duplicates  text,
  p_checks      jsonb,
  p_select_sql  text,
  p_select_line integer
) returns ferry.mappings
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_mapping ferry.mappings;
  v_target  regclass := to_regclass(p_target);
  v_schema  name;
  v_table   name;
begin
  perform pg_advisory_xact_lock(hashtextextended('pgferry:mapping:' || p_name, 0));
  if v_target is null then
    raise exception 'target table % does not exist', p_target using errcode = '42P01';
  end if;
  select n.nspname, c.relname into v_schema, v_table
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where c.oid = v_target;
  if not exists (select from ferry.protected_tables where schema_name = v_schema and table_name = v_table) then
    raise exception 'target table %.% is not protected', v_schema, v_table
      using errcode = '55000',
            hint = format('run: pgferry tenant protect %s.%s', v_schema, v_table);
  end if;

  select * into v_mapping from ferry.mappings where name = p_name and sha256 = p_sha256;
  if found then
    return v_mapping;
  end if;
  insert into ferry.mappings (name, version, sha256, source, source_path, target_schema, target_table,
                              key_columns, on_conflict, duplicates, checks, select_sql, select_line)
  values (p_name,
          coalesce((select max(version) from ferry.mappings where name = p_name), 0) + 1,
          p_sha256, p_source, p_source_path, v_schema, v_table,
          p_key_columns, p_on_conflict, p_duplicates, p_checks, p_select_sql, p_select_line)
  returning * into v_mapping;
  return v_mapping;
end
$$;
