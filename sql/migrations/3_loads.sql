-- Loads: register, stage, compile, transform, promote, verify, clean up.
--
-- The loader (TypeScript) only streams rows into the staging table with COPY and drives the
-- steps; every step below is SQL. Per load, pgferry compiles two functions into the tenant's
-- schema, owned by the tenant role and SECURITY DEFINER, so that the mapping's own SQL and
-- the MERGE run confined by row-level security:
--   <schema>.transform_<load>()          mapping -> validation -> typed work table
--   <schema>.promote_<load>(lo, hi)      one batch of the work table -> MERGE into the target
-- Their text is kept in ferry.loads.compiled_sql.

-- Why a value cannot be read as a type, or NULL when it can. PostgreSQL 16+ asks the type's
-- input function softly; PostgreSQL 15 has no soft input, so it tries the cast.
do $do$
begin
  if current_setting('server_version_num')::int >= 160000 then
    execute $fn$
      create function ferry_util.input_error(p_value text, p_type text) returns text
      language sql stable parallel safe
      -- pg_input_is_valid first: the valid case, by far the common one, then costs a third.
      as $$
        select case when pg_input_is_valid(p_value, p_type) then null
                    else (pg_input_error_info(p_value, p_type)).message end
      $$
    $fn$;
  else
    execute $fn$
      create function ferry_util.input_error(p_value text, p_type text) returns text
      language plpgsql stable parallel safe
      as $$
      declare
        v_cast text;
      begin
        -- p_type is spliced into SQL: accept only a type name (with a typmod), never SQL.
        if p_type !~ '^[A-Za-z"][A-Za-z0-9_ ."]*(\([0-9]+(,[0-9]+)?\))?( with(out)? time zone)?(\[\])*$'
           or to_regtype(p_type) is null then
          raise exception 'not a type name: %', p_type using errcode = '22023';
        end if;
        execute format('select %L::%s::text', p_value, p_type) into v_cast;
        -- An explicit cast cuts character and bit strings to length; storing them would not.
        if p_type ~ '^(character|bit)' and char_length(rtrim(v_cast)) < char_length(rtrim(p_value)) then
          return format('value too long for type %s', p_type);
        end if;
        return null;
      exception when data_exception then
        return sqlerrm;
      end
      $$
    $fn$;
  end if;
end
$do$;
revoke all on function ferry_util.input_error(text, text) from public;

create function ferry.tenant(p_slug text) returns ferry.tenants
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant ferry.tenants;
begin
  select * into v_tenant from ferry.tenants where slug = p_slug;
  if not found then
    raise exception 'unknown tenant %', quote_literal(p_slug)
      using errcode = '42704', hint = 'add it with: pgferry tenant add ' || coalesce(p_slug, '');
  end if;
  return v_tenant;
end
$$;

-- A mapping version: the same content is the same version; new content is the next one.
create function ferry.register_mapping(
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

-- The last load of this file that succeeded, for this tenant and this mapping version (a
-- changed mapping may well give other rows, so it loads the file again).
create function ferry.previous_load_of_file(p_tenant text, p_mapping_id bigint, p_sha256 text)
returns ferry.loads
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select l.*
  from ferry.loads l
  join ferry.tenants t on t.id = l.tenant_id
  where t.slug = p_tenant and l.mapping_id = p_mapping_id and l.file_sha256 = p_sha256
    and l.status = 'succeeded'
  order by l.id desc
  limit 1
$$;

create function ferry.register_load(
  p_tenant     text,
  p_mapping_id bigint,
  p_source     text,
  p_sha256     text,
  p_bytes      bigint,
  p_format     text,
  p_options    jsonb,
  p_os_user    text
) returns ferry.loads
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_load ferry.loads;
begin
  insert into ferry.loads (tenant_id, mapping_id, source, file_sha256, file_bytes, format, options, os_user)
  values ((ferry.tenant(p_tenant)).id, p_mapping_id, p_source, p_sha256, p_bytes, p_format,
          coalesce(p_options, '{}'), p_os_user)
  returning * into v_load;
  insert into ferry.audit (os_user, command, tenant, load_id, outcome, details)
  values (p_os_user, 'load', p_tenant, v_load.id, 'registered',
          jsonb_build_object('source', p_source, 'mapping_id', p_mapping_id));
  return v_load;
end
$$;

create function ferry.set_status(p_load bigint, p_status text, p_error text default null)
returns void
language sql
set search_path = pg_catalog, pg_temp
as $$
  update ferry.loads
  set status = p_status,
      error = coalesce(p_error, error),
      finished_at = case when p_status in ('succeeded', 'failed', 'dry_run') then now() end
  where id = p_load
$$;

create function ferry.record_timing(p_load bigint, p_step text, p_ms numeric)
returns void
language sql
set search_path = pg_catalog, pg_temp
as $$
  update ferry.loads
  set timings = timings || jsonb_build_object(p_step, round(p_ms))
  where id = p_load
$$;

-- Names of a load's tables and functions inside the tenant's schema.
create function ferry.load_object(p_load bigint, p_kind text) returns text
language sql immutable
set search_path = pg_catalog, pg_temp
as $$ select p_kind || '_' || p_load $$;

-- The UNLOGGED staging table: the source's columns, all text, plus the source line number.
create function ferry.prepare_staging(p_load bigint, p_columns text[]) returns text
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_load   ferry.loads;
  v_tenant ferry.tenants;
  v_cols   text;
begin
  select * into strict v_load from ferry.loads where id = p_load;
  select * into strict v_tenant from ferry.tenants where id = v_load.tenant_id;
  if cardinality(p_columns) = 0 then
    raise exception 'the source has no columns' using errcode = '22023';
  end if;
  if (select count(distinct c) from unnest(p_columns) c) <> cardinality(p_columns)
     or '_line' = any (p_columns) then
    raise exception 'staging column names must be unique and not _line' using errcode = '42701';
  end if;

  select string_agg(format('%I text', c), E',\n  ' order by o)
  into v_cols
  from unnest(p_columns) with ordinality as u(c, o);

  execute format('drop table if exists %I.%I', v_tenant.schema_name, ferry.load_object(p_load, 'stage'));
  execute format(E'create unlogged table %I.%I (\n  _line bigint not null,\n  %s\n)',
                 v_tenant.schema_name, ferry.load_object(p_load, 'stage'), v_cols);
  -- The loader owns the tables it writes to (a tenant could otherwise put a trigger on them);
  -- the tenant may only read this one.
  execute format('grant select on %I.%I to %I',
                 v_tenant.schema_name, ferry.load_object(p_load, 'stage'), v_tenant.role_name);

  update ferry.loads
  set staging_schema = v_tenant.schema_name, columns = p_columns, status = 'staging'
  where id = p_load;
  return format('%I.%I', v_tenant.schema_name, ferry.load_object(p_load, 'stage'));
end
$$;

-- Commits a chunk of staging: the last line whose rows are now in the staging table.
create function ferry.checkpoint(p_load bigint, p_line bigint, p_read bigint, p_staged bigint)
returns void
language sql
set search_path = pg_catalog, pg_temp
as $$
  update ferry.loads
  set checkpoint_line = p_line, rows_read = p_read, rows_staged = p_staged
  where id = p_load
$$;

create function ferry.add_reject(
  p_load    bigint,
  p_step    text,
  p_line    bigint,
  p_column  text,
  p_value   text,
  p_rule    text,
  p_message text,
  p_raw     text default null
) returns void
language sql
set search_path = pg_catalog, pg_temp
as $$
  insert into ferry.rejects (load_id, step, line, column_name, value, rule, message, raw)
  values (p_load, p_step, p_line, p_column, p_value, p_rule, p_message, p_raw)
$$;
