-- Transform: the load's compiled mapping and validation (compile.sql), run as the tenant, from
-- the staging table into the typed work table the promotion reads, with the rejects they find
-- moved into the catalog. Like every function here, these pin their search_path: what the
-- tenant's code sets must not steer them.

-- Runs the load's transform_<load>(), checked first to be still the tenant's SECURITY DEFINER
-- function, so that the mapping's SQL runs as the tenant; returns the work table's row count.
-- The rejects it found go to ferry.rejects, the lines it found superseded by a duplicate key
-- to ferry.duplicates (a row per key).
-- It starts from empty tables and drops the transform rejects of an earlier run: run again (a
-- retry, or a resume after the transform committed and before the promotion did), it gives
-- the same result instead of adding to what the first run left. The work table is analyzed
-- for its line and key columns, what later joins on it use (the plan's join to the target;
-- mirror's search for absent rows).
create or replace function ferry.transform(p_load bigint) returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant ferry.tenants := ferry.load_tenant(p_load);
  v_work   text := ferry.quoted_object(v_tenant.schema_name, 'work', p_load);
  v_dups   regclass := to_regclass(ferry.quoted_object(v_tenant.schema_name, 'duplicates', p_load));
  v_keys   text[];
  v_rows   bigint;
begin
  select m.key_columns into strict v_keys from ferry.mappings m join ferry.loads l on l.mapping_id = m.id where l.id = p_load;
  update ferry.loads set status = 'transforming' where id = p_load;
  execute format('truncate %s, %s, %s',
                 ferry.quoted_object(v_tenant.schema_name, 'mapped', p_load),
                 v_work,
                 ferry.quoted_object(v_tenant.schema_name, 'rejects', p_load));
  -- A load compiled before duplicates had a table of their own writes them as rejects.
  if v_dups is not null then
    execute format('truncate %s', v_dups);
  end if;
  delete from ferry.rejects where load_id = p_load and step = 'transform';
  delete from ferry.duplicates where load_id = p_load;
  execute format('select %s()', ferry.tenant_function(p_load, 'transform', '')::oid::regproc);
  perform ferry.unlink_tenant_large_objects(v_tenant);
  execute format('analyze %s (%s)', v_work,
                 (select string_agg(quote_ident(c), ', ') from unnest('_line'::text || v_keys) as c));
  perform ferry.collect_rejects(p_load, 'transform');
  if v_dups is not null then
    execute format('insert into ferry.duplicates (load_id, key, kept_line, lines)
                    select $1, key, kept_line, lines from %s order by kept_line, lines[1]', v_dups)
    using p_load;
    execute format('truncate %s', v_dups);
  end if;
  execute format('select count(*) from %s', v_work) into v_rows;
  return v_rows;
end
$$;

-- Moves the rejects a tenant function wrote (its rejects_<load> table) into ferry.rejects,
-- each with its staged line, and empties that table. Used by the transform and the promotion.
create or replace function ferry.collect_rejects(p_load bigint, p_step text) returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant ferry.tenants := ferry.load_tenant(p_load);
  v_rows   bigint;
begin
  -- raw: the staged row as JSON, so `pgferry rejects` can give back the original values.
  execute format(
    'insert into ferry.rejects (load_id, step, line, column_name, value, rule, message, raw)
     select $1, $2, r.line, r.column_name, r.value, r.rule, r.message, (to_jsonb(st) - %L)::text
     from %s as r
     left join %s as st on st._line = r.line
     order by r.line',
    '_line',
    ferry.quoted_object(v_tenant.schema_name, 'rejects', p_load),
    ferry.quoted_object(v_tenant.schema_name, 'stage', p_load))
  using p_load, p_step;
  get diagnostics v_rows = row_count;
  execute format('truncate %s', ferry.quoted_object(v_tenant.schema_name, 'rejects', p_load));
  return v_rows;
end
$$;
