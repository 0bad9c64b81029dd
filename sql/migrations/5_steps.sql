-- The steps after staging, as the loader calls them. Each takes the load's id. Those that
-- call tenant code pin their search_path: what a tenant's code sets must not steer them.

create function ferry.load_tenant(p_load bigint) returns ferry.tenants
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select t.* from ferry.tenants t join ferry.loads l on l.tenant_id = t.id where l.id = p_load
$$;

-- A compiled function of the load, checked before the loader calls it: still SECURITY DEFINER
-- and owned by the tenant, so that it runs as the tenant and never as the loader.
create function ferry.tenant_function(p_load bigint, p_name text, p_args text) returns regprocedure
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant ferry.tenants := ferry.load_tenant(p_load);
  v_fn     regprocedure := to_regprocedure(format('%I.%I(%s)', v_tenant.schema_name, p_name || '_' || p_load, p_args));
begin
  if v_fn is null or not exists (
    select from pg_proc p join pg_roles r on r.oid = p.proowner
    where p.oid = v_fn and p.prosecdef and r.rolname = v_tenant.role_name
  ) then
    raise exception 'compiled function %_% of load % is missing or was altered', p_name, p_load, p_load
      using errcode = '42883';
  end if;
  return v_fn;
end
$$;

-- Moves the rejects a tenant function wrote into the catalog.
create function ferry.collect_rejects(p_load bigint, p_step text) returns bigint
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

-- transform: runs the compiled mapping and validation as the tenant.
create function ferry.transform(p_load bigint) returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant ferry.tenants := ferry.load_tenant(p_load);
  v_rows   bigint;
begin
  update ferry.loads set status = 'transforming' where id = p_load;
  execute format('select %s()', ferry.tenant_function(p_load, 'transform', '')::oid::regproc);
  execute format('analyze %s', ferry.quoted_object(v_tenant.schema_name, 'work', p_load));
  perform ferry.collect_rejects(p_load, 'transform');
  execute format('select count(*) from %s', ferry.quoted_object(v_tenant.schema_name, 'work', p_load))
  into v_rows;
  return v_rows;
end
$$;

-- Loads into the same tenant and target take turns: the lock is held until the promotion's
-- transaction ends.
create function ferry.lock_target(p_load bigint) returns void
language sql
set search_path = pg_catalog, pg_temp
as $$
  select pg_advisory_xact_lock(
    hashtextextended(format('pgferry:%s:%s.%s', t.slug, m.target_schema, m.target_table), 0))
  from ferry.loads l
  join ferry.tenants t on t.id = l.tenant_id
  join ferry.mappings m on m.id = l.mapping_id
  where l.id = p_load
$$;

-- plan: decides insert / update / unchanged for every row, then returns the batches.
create function ferry.plan_promotion(p_load bigint, p_batch_size integer)
returns table (lo bigint, hi bigint, rows bigint)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant ferry.tenants := ferry.load_tenant(p_load);
begin
  update ferry.loads set status = 'promoting' where id = p_load;
  perform ferry.lock_target(p_load);
  execute format('select %s()', ferry.tenant_function(p_load, 'plan', '')::oid::regproc);
  execute format('analyze %s', ferry.quoted_object(v_tenant.schema_name, 'plan', p_load));
  return query execute format(
    'select min(_line), max(_line), count(*)
     from (select _line, (row_number() over (order by _line) - 1) / $1 as batch from %s) as b
     group by batch
     order by 1',
    ferry.quoted_object(v_tenant.schema_name, 'plan', p_load))
  using p_batch_size;
end
$$;

-- Splits a failed batch in two halves of (nearly) equal row counts.
create function ferry.split_batch(p_load bigint, p_lo bigint, p_hi bigint)
returns table (lo bigint, hi bigint, rows bigint)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant ferry.tenants := ferry.load_tenant(p_load);
begin
  return query execute format(
    'with r as (
       select _line, row_number() over (order by _line) as n, count(*) over () as total
       from %s
       where _line between $1 and $2
     )
     select min(_line), max(_line), count(*)
     from r
     group by n > total / 2
     order by 1',
    ferry.quoted_object(v_tenant.schema_name, 'plan', p_load))
  using p_lo, p_hi;
end
$$;

-- One batch: {inserted, updated, unchanged, conflicts}.
create function ferry.promote_batch(p_load bigint, p_lo bigint, p_hi bigint) returns bigint[]
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant ferry.tenants := ferry.load_tenant(p_load);
  v_counts bigint[];
begin
  execute format('select %s($1, $2)', ferry.tenant_function(p_load, 'promote', 'bigint, bigint')::oid::regproc)
  into v_counts
  using p_lo, p_hi;
  return v_counts;
end
$$;

-- A row whose batch failed even alone (unique or foreign key violation, trigger error).
create function ferry.reject_promotion_row(
  p_load    bigint,
  p_line    bigint,
  p_rule    text,
  p_column  text,
  p_message text
) returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant ferry.tenants := ferry.load_tenant(p_load);
  v_value  text;
  v_raw    text;
begin
  execute format('select (to_jsonb(p) - %L - %L - %L)::text from %s as p where _line = $1',
                 '_line', '_action', '_before', ferry.quoted_object(v_tenant.schema_name, 'plan', p_load))
  into v_value
  using p_line;
  execute format('select (to_jsonb(st) - %L)::text from %s as st where _line = $1',
                 '_line', ferry.quoted_object(v_tenant.schema_name, 'stage', p_load))
  into v_raw
  using p_line;
  perform ferry.add_reject(p_load, 'promote', p_line, p_column, v_value, p_rule, p_message, v_raw);
end
$$;

-- After the last batch: the undo log and promotion rejects go to the catalog.
create function ferry.finish_promotion(p_load bigint, p_inserted bigint, p_updated bigint, p_unchanged bigint)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant ferry.tenants := ferry.load_tenant(p_load);
  v_map    ferry.mappings;
begin
  select m.* into v_map from ferry.mappings m join ferry.loads l on l.mapping_id = m.id where l.id = p_load;
  execute format(
    'insert into ferry.undo (load_id, target_schema, target_table, action, key, before)
     select $1, $2, $3, action, key, before from %s',
    ferry.quoted_object(v_tenant.schema_name, 'undo', p_load))
  using p_load, v_map.target_schema, v_map.target_table;
  perform ferry.collect_rejects(p_load, 'promote');
  update ferry.loads
  set inserted = p_inserted, updated = p_updated, unchanged = p_unchanged
  where id = p_load;
end
$$;

-- The reject counts of a load, from ferry.rejects.
create function ferry.count_rejects(p_load bigint) returns void
language sql
set search_path = pg_catalog, pg_temp
as $$
  update ferry.loads l
  set parse_rejects = r.parse, rows_rejected = r.rejected, duplicates = r.dups
  from (
    select count(*) filter (where step = 'parse') as parse,
           count(distinct line) filter (where step <> 'parse' and rule <> 'duplicate') as rejected,
           count(*) filter (where rule = 'duplicate') as dups
    from ferry.rejects
    where load_id = p_load
  ) as r
  where l.id = p_load
$$;

-- verify: every input row is accounted for, or the load fails.
--   read   = staged + parse rejects
--   staged = promoted + duplicates + rejected
--   promoted = inserted + updated + unchanged
create function ferry.verify_load(p_load bigint) returns ferry.loads
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_load     ferry.loads;
  v_tenant   ferry.tenants := ferry.load_tenant(p_load);
  v_in_table bigint;
  v_parse    bigint;
  v_rejected bigint;
  v_dups     bigint;
  v_problems text[] := '{}';
begin
  select * into strict v_load from ferry.loads where id = p_load;
  execute format('select count(*) from %s', ferry.quoted_object(v_tenant.schema_name, 'stage', p_load))
  into v_in_table;
  select count(*) filter (where step = 'parse'),
         count(distinct line) filter (where step <> 'parse' and rule <> 'duplicate'),
         count(*) filter (where rule = 'duplicate')
  into v_parse, v_rejected, v_dups
  from ferry.rejects
  where load_id = p_load;

  if v_in_table <> v_load.rows_staged then
    v_problems := v_problems || format('the staging table holds %s rows, the loader sent %s', v_in_table, v_load.rows_staged);
  end if;
  if v_load.rows_read <> v_load.rows_staged + v_parse then
    v_problems := v_problems || format('read %s <> staged %s + parse rejects %s', v_load.rows_read, v_load.rows_staged, v_parse);
  end if;
  if v_load.rows_staged <> v_load.inserted + v_load.updated + v_load.unchanged + v_dups + v_rejected then
    v_problems := v_problems || format('staged %s <> promoted %s + duplicates %s + rejected %s',
      v_load.rows_staged, v_load.inserted + v_load.updated + v_load.unchanged, v_dups, v_rejected);
  end if;

  update ferry.loads
  set parse_rejects = v_parse, rows_rejected = v_rejected, duplicates = v_dups
  where id = p_load
  returning * into v_load;

  if cardinality(v_problems) > 0 then
    raise exception 'counts do not reconcile for load %: %', p_load, array_to_string(v_problems, '; ')
      using errcode = 'P0001';
  end if;
  return v_load;
end
$$;

-- cleanup: drops the load's staging and work tables and its compiled functions.
create function ferry.cleanup_load(p_load bigint) returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant ferry.tenants := ferry.load_tenant(p_load);
  v_kind   text;
begin
  foreach v_kind in array array['stage', 'mapped', 'work', 'rejects', 'undo', 'plan'] loop
    execute format('drop table if exists %s', ferry.quoted_object(v_tenant.schema_name, v_kind, p_load));
  end loop;
  execute format('drop function if exists %I.%I()', v_tenant.schema_name, 'transform_' || p_load);
  execute format('drop function if exists %I.%I()', v_tenant.schema_name, 'plan_' || p_load);
  execute format('drop function if exists %I.%I(bigint, bigint)', v_tenant.schema_name, 'promote_' || p_load);
end
$$;
