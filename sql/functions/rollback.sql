-- The SQL of rollback_<load>(p_force), the function that undoes a load: ferry.rollback_load()
-- compiles it for the rollback and drops it after. It runs as the tenant, so row-level
-- security holds as it did for the load. p_undo: a table of the load's undo rows as
-- ferry.undo_log() reads them (an 'inserts' row holds a batch's keys as a JSON array, every
-- other row one row's key), which the tenant may read; p_tag dollar-quotes the body.
--
-- A row is found again by the tenant's value and its key, read through jsonb_populate_record
-- so that each key value is compared as its column's type. A row the load wrote that has another
-- xmin now was changed since, one that is gone was deleted since, and a row a mirror sync
-- deleted that exists again was created since: these are the conflicts. With any, the
-- function changes nothing and returns them, unless p_force.
create or replace function ferry.rollback_function_sql(
  p_load   bigint,
  p_schema name,
  p_table  name,
  p_tenant ferry.tenants,
  p_undo   text,
  p_tag    text
) returns text
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_pt       ferry.protected_tables;
  v_target   text := format('%I.%I', p_schema, p_table);
  v_keys     text[];
  v_cols     text[];
begin
  select * into strict v_pt from ferry.protected_tables where schema_name = p_schema and table_name = p_table;
  -- The key columns, from the load's undo rows: a batch's rows ('inserts', 'updates')
  -- keep an array of keys, the others one key.
  select array_agg(distinct k order by k) into v_keys
  from ferry.undo u
  cross join lateral jsonb_object_keys(case when u.action in ('inserts', 'updates') then u.key -> 0 else u.key end) as k
  where u.load_id = p_load;
  -- The columns a row is restored with: all but generated ones.
  select array_agg(a.attname::text order by a.attnum) into v_cols
  from pg_attribute a
  where a.attrelid = v_target::regclass and a.attnum > 0 and not a.attisdropped and a.attgenerated = '';

  return format($sql$create function %1$I.%2$I(p_force boolean) returns jsonb
language plpgsql security definer set search_path = public, pg_temp
as %3$s
declare
  v_conflicts jsonb;
  v_deleted   bigint;
  v_restored  bigint;
  v_reinserted bigint;
  v_undeleted bigint;
begin
  -- Rows changed or deleted since the load wrote them: another xmin, or gone.
  select jsonb_agg(jsonb_build_object('key', w.key, 'problem', case when w.action = 'delete' then 'created again since the load' when t.ctid is null then 'deleted since the load' else 'changed since the load' end)
                   order by w.key::text)
  into v_conflicts
  from %4$s as w
  cross join lateral jsonb_populate_record(null::%5$s, w.key) as k
  left join %5$s as t on %6$s
  where case when w.action = 'delete' then t.ctid is not null
              else t.ctid is null or t.xmin::text::bigint <> w.xid end;
  if v_conflicts is not null and not p_force then
    return jsonb_build_object('conflicts', v_conflicts);
  end if;

  -- Inserted rows are deleted.
  delete from %5$s as t
  using %4$s as w, jsonb_populate_record(null::%5$s, w.key) as k
  where w.action = 'inserts' and %6$s;
  get diagnostics v_deleted = row_count;

  -- Updated rows get their before-image back.
  update %5$s as t
  set %7$s
  from %4$s as w, jsonb_populate_record(null::%5$s, w.key) as k, jsonb_populate_record(null::%5$s, w.before) as b
  where w.action = 'update' and %6$s;
  get diagnostics v_restored = row_count;

  -- Forced: updated rows deleted since come back as they were before the load.
  insert into %5$s (%8$s) overriding system value
  select %9$s
  from %4$s as w, jsonb_populate_record(null::%5$s, w.before) as b
  where w.action = 'update'
    and not exists (select from jsonb_populate_record(null::%5$s, w.key) as k, %5$s as t where %6$s);
  get diagnostics v_reinserted = row_count;

  -- Rows a mirror sync deleted come back (unless, forced, a row with their key exists again).
  insert into %5$s (%8$s) overriding system value
  select %9$s
  from %4$s as w, jsonb_populate_record(null::%5$s, w.before) as b
  where w.action = 'delete'
    and not exists (select from jsonb_populate_record(null::%5$s, w.key) as k, %5$s as t where %6$s);
  get diagnostics v_undeleted = row_count;
  return jsonb_build_object('deleted', v_deleted, 'restored', v_restored + v_reinserted + v_undeleted, 'conflicts', coalesce(v_conflicts, '[]'));
end
%3$s$sql$,
    p_tenant.schema_name, 'rollback_' || p_load, p_tag,                                 -- 1 2 3
    -- 4: every row the load wrote, the keys of an 'inserts' row out of their array
    format($sql$(select u.action, k.key, u.before, u.xid
   from %1$s as u
   cross join lateral jsonb_array_elements(case when u.action = 'inserts' then u.key else jsonb_build_array(u.key) end) as k (key))$sql$,
           p_undo),
    v_target,                                                                           -- 5
    -- 6: the row of the tenant (t) with the key k
    format('t.%I = %L::%s', v_pt.tenant_column, p_tenant.tenant_key, v_pt.tenant_type)
      || (select string_agg(format(' and t.%I = k.%I', c, c), '') from unnest(v_keys) c),
    -- 7: an updated row's columns but the tenant and the keys, set back from its before-image b
    --    (the tenant column set to itself when no other is left)
    coalesce((select string_agg(format('%I = b.%I', c, c), ', ') from unnest(v_cols) c
              where c <> v_pt.tenant_column and not c = any (v_keys)),
             format('%I = t.%I', v_pt.tenant_column, v_pt.tenant_column)),
    (select string_agg(quote_ident(c), ', ') from unnest(v_cols) c),                    -- 8
    (select string_agg(format('b.%I', c), ', ') from unnest(v_cols) c));                -- 9
end
$$;

-- Rolls back a succeeded load: in one transaction, holding the tenant+target lock that loads
-- take, as the tenant (through rollback_<load>(), see ferry.rollback_function_sql). Returns
-- the outcome: rolled_back, conflicts (nothing changed; p_force restores anyway), or
-- already_rolled_back.
create or replace function ferry.rollback_load(p_load bigint, p_force boolean, p_os_user text)
returns table (outcome text, deleted bigint, restored bigint, conflicts jsonb)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_load   ferry.loads;
  v_tenant ferry.tenants;
  v_map    ferry.mappings;
  v_undo   text;
  v_tag    text := '$pgferry_' || replace(gen_random_uuid()::text, '-', '') || '$';
  v_result jsonb;
begin
  select * into v_load from ferry.loads where id = p_load for update;
  if not found then
    raise exception 'no load %', p_load using errcode = '42704', hint = 'pgferry loads lists them';
  end if;
  if v_load.status = 'rolled_back' then
    return query select 'already_rolled_back'::text, 0::bigint, 0::bigint, '[]'::jsonb;
    return;
  end if;
  if v_load.status <> 'succeeded' then
    raise exception 'load % is %: only a succeeded load can be rolled back', p_load, v_load.status
      using errcode = '55000',
            hint = case when v_load.status in ('failed', 'dry_run') then 'it promoted nothing: there is nothing to roll back' end;
  end if;
  if v_load.undo_pruned_at is not null then
    raise exception 'the undo log of load % was pruned on %: it can no longer be rolled back',
      p_load, v_load.undo_pruned_at using errcode = '55000';
  end if;
  v_tenant := ferry.load_tenant(p_load);
  select * into strict v_map from ferry.mappings where id = v_load.mapping_id;
  perform ferry.lock_target(p_load);

  if not exists (select from ferry.undo where load_id = p_load) then
    -- It wrote nothing (every row unchanged, say): nothing to undo.
    v_result := jsonb_build_object('deleted', 0, 'restored', 0, 'conflicts', '[]'::jsonb);
  else
    -- The undo rows, where the tenant's function can read them (owned by the loader).
    v_undo := ferry.quoted_object(v_tenant.schema_name, 'rollback', p_load);
    execute format('drop table if exists %s', v_undo);
    execute format('create unlogged table %s as select action, key, before, xid from ferry.undo with no data', v_undo);
    execute format('insert into %s select * from ferry.undo_log($1)', v_undo) using p_load;
    execute format('grant select on %s to %I', v_undo, v_tenant.role_name);

    execute format('drop function if exists %I.%I(boolean)', v_tenant.schema_name, 'rollback_' || p_load);
    execute ferry.rollback_function_sql(p_load, v_map.target_schema, v_map.target_table, v_tenant, v_undo, v_tag);
    execute format('alter function %I.%I(boolean) owner to %I', v_tenant.schema_name, 'rollback_' || p_load, v_tenant.role_name);
    perform ferry.restrict_to_loader(format('%I.%I(boolean)', v_tenant.schema_name, 'rollback_' || p_load), v_tenant);
    execute format('select %s($1)', ferry.tenant_function(p_load, 'rollback', 'boolean')::oid::regproc)
    into v_result
    using p_force;
    execute format('drop function %I.%I(boolean)', v_tenant.schema_name, 'rollback_' || p_load);
    execute format('drop table %s', v_undo);
  end if;

  if v_result ? 'deleted' then
    update ferry.loads set status = 'rolled_back', rolled_back_at = now() where id = p_load;
    insert into ferry.audit (os_user, command, tenant, load_id, outcome, details)
    values (p_os_user, 'rollback', v_tenant.slug, p_load, 'rolled_back',
            jsonb_build_object('deleted', v_result->'deleted', 'restored', v_result->'restored',
                               'forced', p_force, 'conflicts', jsonb_array_length(v_result->'conflicts')));
    return query select 'rolled_back'::text, (v_result->>'deleted')::bigint, (v_result->>'restored')::bigint,
                        v_result->'conflicts';
  else
    insert into ferry.audit (os_user, command, tenant, load_id, outcome, details)
    values (p_os_user, 'rollback', v_tenant.slug, p_load, 'refused',
            jsonb_build_object('conflicts', jsonb_array_length(v_result->'conflicts')));
    return query select 'conflicts'::text, 0::bigint, 0::bigint, v_result->'conflicts';
  end if;
end
$$;

-- Removes the undo logs of loads finished before p_before. Those loads can no longer be rolled
-- back; their other records (counts, rejects) stay.
create or replace function ferry.prune_undo(p_before timestamptz, p_os_user text)
returns table (loads bigint, undo_rows bigint)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_loads bigint[];
  v_rows  bigint;
begin
  select coalesce(array_agg(id order by id), '{}') into v_loads
  from ferry.loads
  where finished_at < p_before and undo_pruned_at is null
    and exists (select from ferry.undo u where u.load_id = ferry.loads.id);
  delete from ferry.undo where load_id = any (v_loads);
  get diagnostics v_rows = row_count;
  update ferry.loads set undo_pruned_at = now() where id = any (v_loads);
  insert into ferry.audit (os_user, command, outcome, details)
  values (p_os_user, 'prune', 'pruned',
          jsonb_build_object('before', p_before, 'loads', cardinality(v_loads), 'undo_rows', v_rows));
  return query select cardinality(v_loads)::bigint, v_rows;
end
$$;
