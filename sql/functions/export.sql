-- Exporting a tenant's rows: `pgferry export`.
--
-- An export runs the tenant's query AS the tenant, inside a SECURITY DEFINER function the
-- tenant owns, where PostgreSQL refuses any change of `role` or `session_authorization`. A
-- plain `SET LOCAL ROLE` would not do: with a superuser loader, the query itself could run
-- `set_config('role', 'postgres', true)` and read every tenant's rows.
--
-- The loader, in one transaction:
--   1. (for --table) export_table_query() builds the SELECT from the catalog;
--   2. prepare_export() describes the query's columns as the tenant, without running it,
--      and installs <tenant schema>.export_<id>() returning them, its body the query;
--   3. SET TRANSACTION READ ONLY, so that nothing the query calls can write, and
--      COPY (select * from <tenant schema>.export_<id>()) TO STDOUT;
--   4. ROLLBACK: the functions of step 2 never become visible to anyone else and are gone,
--      whether the export succeeded or failed.

-- How the writers treat a column, from its type (a domain: its base type): `integer`,
-- `numeric` and `float` are numbers, `boolean` is true/false, `json` is JSON text, `text` is
-- everything else (dates, timestamps, arrays, ...), written as PostgreSQL's text output.
create or replace function ferry.export_column_kind(p_type oid) returns text
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_type oid := p_type;
begin
  while (select t.typtype = 'd' from pg_type t where t.oid = v_type) loop
    select t.typbasetype into v_type from pg_type t where t.oid = v_type;
  end loop;
  return case v_type
    when 'int2'::regtype then 'integer'
    when 'int4'::regtype then 'integer'
    when 'int8'::regtype then 'integer'
    when 'numeric'::regtype then 'numeric'
    when 'float4'::regtype then 'float'
    when 'float8'::regtype then 'float'
    when 'bool'::regtype then 'boolean'
    when 'json'::regtype then 'json'
    when 'jsonb'::regtype then 'json'
    else 'text'
  end;
end
$$;

-- The SELECT of `pgferry export --table`: the table and columns checked in the catalog and
-- quoted, the tenant column left out unless named in p_columns, rows in primary key order.
-- Returns it with the table's schema and name, and `display`, the two as SQL would quote them.
-- p_where is spliced in as it is: it runs as the tenant (prepare_export), so whatever it
-- says, it sees only the tenant's rows. It sits on lines of its own, so that a `--` comment
-- in it cannot swallow the closing parenthesis.
create or replace function ferry.export_table_query(
  p_tenant  text,
  p_table   text,
  p_columns text[] default null,
  p_where   text default null
) returns table (schema_name name, table_name name, display text, query text)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_table   regclass;
  v_pt      ferry.protected_tables;
  v_spec    text;
  v_name    text[];
  v_columns text[] := '{}';
  v_order   text;
  v_query   text;
begin
  perform ferry.tenant(p_tenant);
  begin
    v_table := to_regclass(p_table);
  exception when invalid_name or syntax_error or feature_not_supported then
    -- A name that cannot be a table's ("a.b.c.d", a cross-database "db.app.t"): PostgreSQL 15
    -- raises where 16 and later return NULL.
    v_table := null;
  end;
  if v_table is null then
    raise exception 'table % does not exist', p_table using errcode = '42P01';
  end if;
  select pt.* into v_pt
  from ferry.protected_tables pt
  join pg_class c on c.relname = pt.table_name
  join pg_namespace n on n.oid = c.relnamespace and n.nspname = pt.schema_name
  where c.oid = v_table;
  if not found then
    raise exception 'table % is not protected: pgferry exports the rows of protected tables only', v_table
      using errcode = '55000', hint = format('run: pgferry tenant protect %s', v_table);
  end if;

  if p_columns is null then
    select array_agg(a.attname::text order by a.attnum) into v_columns
    from pg_attribute a
    where a.attrelid = v_table and a.attnum > 0 and not a.attisdropped and a.attname <> v_pt.tenant_column;
  else
    foreach v_spec in array p_columns loop
      -- As in SQL: an unquoted name is lower-cased, a quoted one ("SKU") kept as written.
      begin
        v_name := parse_ident(v_spec);
      exception when invalid_parameter_value then
        v_name := null;
      end;
      if cardinality(v_name) is distinct from 1 then
        raise exception 'invalid column name %', quote_literal(v_spec)
          using errcode = '42602', hint = 'write a name as in SQL; quote it ("Item Code") for spaces or capitals';
      end if;
      if not exists (select from pg_attribute a
                     where a.attrelid = v_table and a.attname = v_name[1] and a.attnum > 0 and not a.attisdropped) then
        raise exception 'table % has no column %', v_table, quote_ident(v_name[1])
          using errcode = '42703',
                hint = (select 'its columns: ' || string_agg(quote_ident(a.attname), ', ' order by a.attnum)
                        from pg_attribute a where a.attrelid = v_table and a.attnum > 0 and not a.attisdropped);
      end if;
      if v_name[1] = any (v_columns) then
        raise exception 'column % is listed twice', quote_ident(v_name[1]) using errcode = '42701';
      end if;
      v_columns := v_columns || v_name[1];
    end loop;
  end if;
  if cardinality(v_columns) = 0 then
    raise exception 'table % has no columns to export besides its tenant column %', v_table, v_pt.tenant_column
      using errcode = '42P10';
  end if;

  select string_agg(quote_ident(a.attname), ', ' order by k.ord) into v_order
  from pg_index i
  cross join lateral unnest(i.indkey) with ordinality as k (attnum, ord)
  join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
  where i.indrelid = v_table and i.indisprimary;

  v_query := format(E'select %s\nfrom %I.%I',
                    (select string_agg(quote_ident(c), ', ') from unnest(v_columns) c),
                    v_pt.schema_name, v_pt.table_name);
  if p_where is not null then
    v_query := v_query || format(E'\nwhere (\n%s\n)', p_where);
  end if;
  if v_order is not null then
    v_query := v_query || E'\norder by ' || v_order;
  end if;
  return query select v_pt.schema_name, v_pt.table_name, format('%I.%I', v_pt.schema_name, v_pt.table_name), v_query;
end
$$;

-- Installs the export of p_query for tenant p_tenant; returns the function to read, and its
-- columns (name, type, kind) in order.
--
-- p_query is only ever planned or run as the tenant. It is wrapped as
-- `select * from (<query>) as export`, so the one statement that can run is a SELECT: a
-- data-modifying WITH inside is refused by PostgreSQL ("must be at the top level"), as is
-- anything that is not a query. First, as the tenant, a cursor is opened on it and closed
-- unread: that refuses several statements before running any, and checks the tenant's
-- privileges. Then a temporary view of it gives the columns. The export function's body is
-- the same text; it is not checked when created (as the loader), only when the tenant runs it.
create or replace function ferry.prepare_export(p_tenant text, p_query text)
returns table (function_name text, column_name text, type_name text, kind text)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant   ferry.tenants := ferry.tenant(p_tenant);
  -- Random names: exports of one tenant run side by side; unguessable quoting (random() can
  -- be seeded by a query).
  v_id       text := replace(gen_random_uuid()::text, '-', '');
  v_describe text := 'export_describe_' || v_id;
  v_export   text := 'export_' || v_id;
  v_tag      text := '$pgferry_' || v_id || '$';
  v_query    text;
  v_columns  record;
  v_names    text[] := '{}';
  v_types    oid[] := '{}';
  v_typmods  integer[] := '{}';
begin
  -- A trailing `;` is a habit, not a second statement.
  v_query := regexp_replace(coalesce(p_query, ''), '[\s;]+$', '');
  if btrim(v_query, E' \t\r\n') = '' then
    raise exception 'the export query is empty' using errcode = '42601';
  end if;
  if position(v_tag in v_query) > 0 then
    raise exception 'the query contains the text %', v_tag using errcode = '42601';
  end if;
  v_query := format(E'select * from (\n%s\n) as export', v_query);

  execute format($f$
    create function %I.%I(p_sql text)
    returns table (column_name name, type_oid oid, typmod integer)
    language plpgsql security definer set search_path = public, pg_temp
    as $body$
    declare
      v_cursor refcursor;
    begin
      open v_cursor for execute p_sql;
      close v_cursor;
      execute 'create temporary view pgferry_export_describe as ' || p_sql;
      return query
        select a.attname, a.atttypid, a.atttypmod
        from pg_catalog.pg_attribute a
        where a.attrelid = 'pg_temp.pgferry_export_describe'::regclass and a.attnum > 0
        order by a.attnum;
      drop view pg_temp.pgferry_export_describe;
    end
    $body$
  $f$, v_tenant.schema_name, v_describe);
  execute format('alter function %I.%I(text) owner to %I', v_tenant.schema_name, v_describe, v_tenant.role_name);
  perform ferry.restrict_to_loader(format('%I.%I(text)', v_tenant.schema_name, v_describe), v_tenant);

  begin
    for v_columns in execute format('select * from %I.%I($1)', v_tenant.schema_name, v_describe) using v_query loop
      v_names := v_names || v_columns.column_name::text;
      v_types := v_types || v_columns.type_oid;
      v_typmods := v_typmods || v_columns.typmod;
    end loop;
  exception when invalid_cursor_definition then
    -- "cannot open multi-query plan as cursor"
    raise exception 'the export query must be one statement' using errcode = '42601';
  end;
  execute format('drop function %I.%I(text)', v_tenant.schema_name, v_describe);
  if cardinality(v_names) = 0 then
    raise exception 'the export query returns no columns' using errcode = '42601';
  end if;

  -- Checked as the tenant when it runs, never as the loader.
  perform set_config('check_function_bodies', 'off', true);
  execute format(
    E'create function %I.%I()\n'
    'returns table (%s)\n'
    'language sql security definer set search_path = public, pg_temp\n'
    'as %s\n%s\n%s',
    v_tenant.schema_name, v_export,
    (select string_agg(format('%I %s', n, format_type(t, m)), ', ' order by i)
     from unnest(v_names, v_types, v_typmods) with ordinality as c (n, t, m, i)),
    v_tag, v_query, v_tag);
  execute format('alter function %I.%I() owner to %I', v_tenant.schema_name, v_export, v_tenant.role_name);
  perform ferry.restrict_to_loader(format('%I.%I()', v_tenant.schema_name, v_export), v_tenant);

  return query
    select format('%I.%I', v_tenant.schema_name, v_export), n, format_type(t, m), ferry.export_column_kind(t)
    from unnest(v_names, v_types, v_typmods) with ordinality as c (n, t, m, i)
    order by i;
end
$$;
