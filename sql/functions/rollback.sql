-- Rollback: a succeeded load undone from its undo log (ferry.undo), in one transaction.
--
--   ferry.rollback_load()          checks the load, takes the tenant+target lock, writes the
--                                  load's undo rows into a table of their own (typed keys,
--                                  analyzed), and runs rollback_<load>() on them.
--   ferry.rollback_function_sql()  writes rollback_<load>(), which runs as the tenant.
--
-- A rollback costs what the load wrote, not what the planner believes of the tenant: a tenant
-- new to the target is not in its statistics, which take its rows for one or two, and a join
-- of its rows to the undo rows then becomes a nested loop that reads all of them again for
-- every undo row (quadratic: 10k updates + 40k inserts ran for over 10 minutes). So the
-- rollback leaves the planner no plan that hangs on them:
--   * one pass over the undo rows finds each one's target row by key, through a LATERAL
--     subquery kept a subquery (OFFSET 0): a nested loop with the undo rows outside and one
--     lookup in the target's key index inside, whatever the statistics say. It collects the
--     conflicts and the ctids of the rows to delete and to restore;
--   * those rows are then reached at their ctids, joined to the arrays (unnest) with every
--     scan but the TID scan disabled, as promote_<load>()'s UPDATE does: a nested loop with a
--     TID scan a row inside. Left to itself, the planner could read the rows of a tenant it
--     takes for one through the tenant column's index and compare each with every ctid
--     (quadratic again). Disabled, not forbidden: PostgreSQL 18 counts disabled nodes,
--     earlier versions add a huge cost to them; on every version the one path left enabled
--     wins.
-- A target with no btree index on its key cannot be looked up by key: there the lookup pass
-- joins the undo rows to it with nested loops disabled (a hash or merge join, one scan of the
-- target).

-- The keys of an 'inserts' undo row, a key a row ({"column": value, ...}): kept either as a
-- JSON array of keys (a batch's, or read from RETURNING) or a column at a time, as
-- {"column": [values], ...} (a one-statement insert's, see ferry.bulk_function_sql).
create or replace function ferry.undo_keys(p_key jsonb) returns setof jsonb
language plpgsql immutable
set search_path = pg_catalog, pg_temp
as $$
begin
  if jsonb_typeof(p_key) = 'array' then
    return query select e from jsonb_array_elements(p_key) as e;
  elsif (select count(*) from jsonb_object_keys(p_key)) = 1 then
    return query
      select jsonb_build_object(c.key, e)
      from jsonb_each(p_key) as c
      cross join lateral jsonb_array_elements(c.value) as e;
  else
    return query
      select jsonb_object_agg(c.key, e.value)
      from jsonb_each(p_key) as c
      cross join lateral jsonb_array_elements(c.value) with ordinality as e (value, n)
      group by e.n;
  end if;
end
$$;

-- The key columns of a load's undo rows: a batch's rows ('inserts', 'updates') keep an array
-- of keys (or, 'inserts', an object of arrays: ferry.undo_keys), the others one key.
create or replace function ferry.undo_key_columns(p_load bigint) returns text[]
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select array_agg(distinct k order by k)
  from ferry.undo u
  cross join lateral jsonb_object_keys(case when jsonb_typeof(u.key) = 'array' then u.key -> 0 else u.key end) as k
  where u.load_id = p_load
$$;

-- The SQL of rollback_<load>(p_force), the function that undoes a load: ferry.rollback_load()
-- compiles it for the rollback and drops it after. It runs as the tenant, so row-level
-- security holds as it did for the load. p_undo: the table of the load's undo rows that
-- ferry.rollback_load() wrote, one row a written row (_action 'inserts', 'update' or
-- 'delete'; _key; _xid; _before, a row of the target's type; the key columns, typed as the
-- target's; _tid, null), which the tenant may read; p_tag dollar-quotes the body.
--
-- A row the load wrote that has another xmin now was changed since, one that is gone was
-- deleted since, and a row a mirror sync deleted that exists again was created since: these
-- are the conflicts. With any, the function changes nothing and returns them, unless p_force.
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
  v_keys     text[] := ferry.undo_key_columns(p_load);
  v_cols     text[];
  v_set      text[];
  v_by_key   boolean;
  v_is_row   text;
  v_found    text;
begin
  select * into strict v_pt from ferry.protected_tables where schema_name = p_schema and table_name = p_table;
  -- The columns a row is restored with: all but generated ones.
  select array_agg(a.attname::text order by a.attnum) into v_cols
  from pg_attribute a
  where a.attrelid = v_target::regclass and a.attnum > 0 and not a.attisdropped and a.attgenerated = '';
  -- The columns an updated row gets back: all but the tenant and the keys (the tenant column
  -- set to itself when no other is left).
  v_set := array(select c from unnest(v_cols) c where c <> v_pt.tenant_column and not c = any (v_keys));
  v_by_key := ferry.has_key_index(v_target::regclass, v_keys, v_pt.tenant_column);
  -- Each undo row w with its target row f (f._tid, f._txmin; null when there is none): the row
  -- of the tenant with w's key. By key: OFFSET 0 keeps the subquery from being pulled up into
  -- a join, so it stays one index lookup an undo row. Without a key index it is pulled up
  -- into a join, which the function's SET clause keeps from being a nested loop. v_is_row:
  -- the row t is the tenant's with the key of the undo row w.
  v_is_row := format('t.%I = %L::%s', v_pt.tenant_column, p_tenant.tenant_key, v_pt.tenant_type)
              || (select string_agg(format(' and t.%I = w.%I', c, c), '') from unnest(v_keys) c);
  v_found := format($sql$%1$s as w
  left join lateral (
    select t.ctid as _tid, t.xmin::text::bigint as _txmin from %2$s as t where %3$s%4$s
  ) as f on true$sql$,
    p_undo, v_target, v_is_row, case when v_by_key then ' offset 0' else '' end);

  return format($sql$create function %1$I.%2$I(p_force boolean) returns jsonb
language plpgsql security definer set search_path = public, pg_temp%14$s
as %3$s
declare
  v_conflicts  jsonb;
  v_inserted   %6$s[];
  v_updated    %6$s[];
  v_settings   text[];
  v_deleted    bigint;
  v_restored   bigint;
  v_reinserted bigint := 0;
  v_undeleted  bigint := 0;
begin
  -- One pass over the undo rows: rows changed or deleted since the load wrote them (another
  -- xmin, or gone), and the rows to delete and to restore, each an undo row with the ctid
  -- of its target row (_tid).
  select jsonb_agg(jsonb_build_object('key', w._key, 'problem', case when w._action = 'delete' then 'created again since the load' when f._tid is null then 'deleted since the load' else 'changed since the load' end)
                   order by w._key::text)
           filter (where case when w._action = 'delete' then f._tid is not null
                              else f._tid is null or f._txmin <> w._xid end),
         coalesce(array_agg(%7$s) filter (where w._action = 'inserts' and f._tid is not null), '{}'),
         coalesce(array_agg(%7$s) filter (where w._action = 'update' and f._tid is not null), '{}')
  into v_conflicts, v_inserted, v_updated
  from %4$s;
  if v_conflicts is not null and not p_force then
    return jsonb_build_object('conflicts', v_conflicts);
  end if;

  -- Each row reached at its ctid, by a TID scan (the only scan left enabled) a row, and
  -- checked to be the tenant's row of that key still (a ctid names a row of one partition).
  -- With the other scans enabled, the planner could read the rows of a tenant it takes for
  -- one through the tenant column's index and compare each with every ctid (quadratic).
  v_settings := array(select current_setting(s) from unnest(%8$L::text[]) as s);
  perform set_config(s, v, true) from unnest(%8$L::text[], %9$L::text[]) as x(s, v);
  -- Inserted rows are deleted.
  delete from %5$s as t
  using unnest(v_inserted) as w
  where t.ctid = w._tid and %10$s;
  get diagnostics v_deleted = row_count;
  -- Updated rows get their before-image back.
  update %5$s as t
  set %11$s
  from unnest(v_updated) as w
  where t.ctid = w._tid and %10$s;
  get diagnostics v_restored = row_count;
  perform set_config(s, v, true) from unnest(%8$L::text[], v_settings) as x(s, v);

  if v_conflicts is not null then
    -- Forced: updated rows deleted since come back as they were before the load.
    insert into %5$s (%12$s) overriding system value
    select %13$s
    from %4$s
    where w._action = 'update' and f._tid is null;
    get diagnostics v_reinserted = row_count;
  end if;

  -- Rows a mirror sync deleted come back (unless, forced, a row with their key exists again).
  if exists (select from %6$s where _action = 'delete') then
    insert into %5$s (%12$s) overriding system value
    select %13$s
    from %4$s
    where w._action = 'delete' and f._tid is null;
    get diagnostics v_undeleted = row_count;
  end if;
  return jsonb_build_object('deleted', v_deleted, 'restored', v_restored + v_reinserted + v_undeleted, 'conflicts', coalesce(v_conflicts, '[]'));
end
%3$s$sql$,
    p_tenant.schema_name, 'rollback_' || p_load, p_tag,                                 -- 1 2 3
    v_found,                                                                            -- 4
    v_target,                                                                           -- 5
    p_undo,                                                                             -- 6
    -- 7: the undo row w with its target row's ctid, a row of p_undo
    format('row(w._action, w._key, w._xid, w._before, %s, f._tid)::%s',
           (select string_agg(format('w.%I', c), ', ') from unnest(v_keys) c), p_undo),
    -- 8 9: the settings of the DELETE and UPDATE (as promote_<load>()'s UPDATE has them)
    '{enable_seqscan,enable_indexscan,enable_bitmapscan,enable_tidscan,jit}', '{off,off,off,on,off}',
    -- 10: the row t is the tenant's with w's key
    v_is_row,
    -- 11: an updated row's columns but the tenant and the keys, set back from its before-image
    --     (the tenant column set to itself when no other is left)
    coalesce((select string_agg(format('%I = (w._before).%I', c, c), ', ') from unnest(v_set) c),
             format('%I = t.%I', v_pt.tenant_column, v_pt.tenant_column)),
    (select string_agg(quote_ident(c), ', ') from unnest(v_cols) c),                    -- 12
    (select string_agg(format('(w._before).%I', c), ', ') from unnest(v_cols) c),       -- 13
    case when not v_by_key then E'\nset enable_nestloop = off' end);                    -- 14
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
  v_target text;
  v_keys   text[];
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
            -- A RAISE option may not be NULL (it would fail with just that): every status gets a hint.
            hint = case when v_load.status in ('failed', 'dry_run', 'cancelled')
                        then 'it promoted nothing: there is nothing to roll back'
                        else 'it has not finished: wait for it, or stop it with pgferry cancel' end;
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
    -- The undo rows, where the tenant's function can read them (owned by the loader): one
    -- row a written row (a batch's keys out of their array), its key columns typed as the
    -- target's (compared with the target's as they are, so its key index serves) and its
    -- before-image a row of the target's type; _tid, for rollback_<load>()'s arrays of them.
    -- Analyzed: so that a join of them (a target without a key index) is sized right.
    v_undo := ferry.quoted_object(v_tenant.schema_name, 'rollback', p_load);
    v_target := format('%I.%I', v_map.target_schema, v_map.target_table);
    v_keys := ferry.undo_key_columns(p_load);
    execute format('drop table if exists %s', v_undo);
    execute format($sql$create unlogged table %1$s as
      select u.action as _action, k.key as _key, u.xid as _xid,
             jsonb_populate_record(null::%2$s, u.before) as _before, %3$s, null::tid as _tid
      from ferry.undo_log(%4$s) as u
      cross join lateral ferry.undo_keys(case when u.action = 'inserts' then u.key else jsonb_build_array(u.key) end) as k (key)
      cross join lateral jsonb_populate_record(null::%2$s, k.key) as r$sql$,
      v_undo, v_target, (select string_agg(format('r.%I', c), ', ') from unnest(v_keys) c), p_load);
    execute format('analyze %s', v_undo);
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
