-- As in 12_syncs.sql, with the key columns read from a batch of updates as from a batch of
-- inserts (the first key of its array).
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
  v_match    text;
  v_written  text;
  v_tenant_value text;
begin
  select * into strict v_pt from ferry.protected_tables where schema_name = p_schema and table_name = p_table;
  v_tenant_value := format('%L::%s', p_tenant.tenant_key, v_pt.tenant_type);
  select array_agg(distinct k order by k) into v_keys
  from ferry.undo u
  cross join lateral jsonb_object_keys(case when u.action in ('inserts', 'updates') then u.key -> 0 else u.key end) as k
  where u.load_id = p_load;
  select array_agg(a.attname::text order by a.attnum) into v_cols
  from pg_attribute a
  where a.attrelid = v_target::regclass and a.attnum > 0 and not a.attisdropped and a.attgenerated = '';
  -- Keys are matched through jsonb_populate_record: each value read back as its column's type.
  v_match := format('t.%I = %s', v_pt.tenant_column, v_tenant_value)
    || (select string_agg(format(' and t.%I = k.%I', c, c), '') from unnest(v_keys) c);
  -- Every row the load wrote: inserted keys out of their arrays, updated rows one each.
  v_written := format(
    E'(select u.action, k.key, u.before, u.xid\n'
    '   from %1$s as u\n'
    '   cross join lateral jsonb_array_elements(case when u.action = %2$L then u.key else jsonb_build_array(u.key) end) as k (key))',
    p_undo, 'inserts');

  return format(
    E'create function %1$I.%2$I(p_force boolean) returns jsonb\n'
    'language plpgsql security definer set search_path = public, pg_temp\n'
    'as %3$s\n'
    'declare\n'
    '  v_conflicts jsonb;\n'
    '  v_deleted   bigint;\n'
    '  v_restored  bigint;\n'
    '  v_reinserted bigint;\n'
    '  v_undeleted bigint;\n'
    'begin\n'
    '  -- Rows changed or deleted since the load wrote them: another xmin, or gone.\n'
    '  select jsonb_agg(jsonb_build_object(%4$L, w.key, %5$L, case when w.action = %21$L then %22$L when t.ctid is null then %6$L else %7$L end)\n'
    '                   order by w.key::text)\n'
    '  into v_conflicts\n'
    '  from %8$s as w\n'
    '  cross join lateral jsonb_populate_record(null::%9$s, w.key) as k\n'
    '  left join %9$s as t on %10$s\n'
    '  where case when w.action = %21$L then t.ctid is not null\n'
    '              else t.ctid is null or w.xid is null or t.xmin::text::bigint <> w.xid end;\n'
    '  if v_conflicts is not null and not p_force then\n'
    '    return jsonb_build_object(%11$L, v_conflicts);\n'
    '  end if;\n\n'
    '  -- Inserted rows are deleted.\n'
    '  delete from %9$s as t\n'
    '  using %8$s as w, jsonb_populate_record(null::%9$s, w.key) as k\n'
    '  where w.action in (%12$L, %13$L) and %10$s;\n'
    '  get diagnostics v_deleted = row_count;\n\n'
    '  -- Updated rows get their before-image back.\n'
    '  update %9$s as t\n'
    '  set %14$s\n'
    '  from %8$s as w, jsonb_populate_record(null::%9$s, w.key) as k, jsonb_populate_record(null::%9$s, w.before) as b\n'
    '  where w.action = %15$L and %10$s;\n'
    '  get diagnostics v_restored = row_count;\n\n'
    '  -- Forced: updated rows deleted since come back as they were before the load.\n'
    '  insert into %9$s (%16$s) overriding system value\n'
    '  select %17$s\n'
    '  from %8$s as w, jsonb_populate_record(null::%9$s, w.before) as b\n'
    '  where w.action = %15$L\n'
    '    and not exists (select from jsonb_populate_record(null::%9$s, w.key) as k, %9$s as t where %10$s);\n'
    '  get diagnostics v_reinserted = row_count;\n\n'
    '  -- Rows a mirror sync deleted come back (unless, forced, a row with their key exists again).\n'
    '  insert into %9$s (%16$s) overriding system value\n'
    '  select %17$s\n'
    '  from %8$s as w, jsonb_populate_record(null::%9$s, w.before) as b\n'
    '  where w.action = %21$L\n'
    '    and not exists (select from jsonb_populate_record(null::%9$s, w.key) as k, %9$s as t where %10$s);\n'
    '  get diagnostics v_undeleted = row_count;\n'
    '  return jsonb_build_object(%18$L, v_deleted, %19$L, v_restored + v_reinserted + v_undeleted, %11$L, coalesce(v_conflicts, %20$L));\n'
    'end\n'
    '%3$s',
    p_tenant.schema_name, 'rollback_' || p_load, p_tag,
    'key', 'problem', 'deleted since the load', 'changed since the load',
    v_written, v_target, v_match,
    'conflicts',
    'inserts', 'insert',
    coalesce((select string_agg(format('%I = b.%I', c, c), ', ') from unnest(v_cols) c
              where c <> v_pt.tenant_column and not c = any (v_keys)),
             format('%I = t.%I', v_pt.tenant_column, v_pt.tenant_column)),
    'update',
    (select string_agg(quote_ident(c), ', ') from unnest(v_cols) c),
    (select string_agg(format('b.%I', c), ', ') from unnest(v_cols) c),
    'deleted', 'restored', '[]',
    'delete', 'created again since the load');
end
$$;

-- As in 7_rollback.sql, reading the undo log through ferry.undo_log().
-- Rolls back a succeeded load: in one transaction, holding the tenant+target lock that loads
-- take, as the tenant. Returns the outcome: rolled_back, conflicts (nothing changed; p_force
-- restores anyway), or already_rolled_back.
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
