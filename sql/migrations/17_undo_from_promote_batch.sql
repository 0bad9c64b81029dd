-- A batch's undo log written by ferry.promote_batch() straight into ferry.undo (issue 6).
--
-- promote_N() wrote the undo rows of its batch (the keys of the rows it inserted, the
-- before-image of each row it updated) into the load's unlogged undo table, and
-- finish_promotion copied them into ferry.undo after the last batch: each row written twice.
-- In a sync's increment (10,000 changed rows of a 1,000,000-row target, bench/sync.ts) the
-- copy took 45 ms. promote_N() runs as the tenant, which may not write ferry.undo, so it now
-- returns the rows, and ferry.promote_batch(), the loader's, writes them in the same
-- statement, under the batch's savepoint as before: a failed batch leaves no undo row. In
-- that increment the promote step's median went from 382 to 367 ms (8 interleaved runs each).
-- finish_promotion still copies the undo table, which only a load compiled before this
-- migration (its promote_N() returns bigint[]) still writes.
--
-- compile_load (16_promotion_functions.sql) calls ferry.promotion_functions_sql(): replacing
-- it and ferry.promote_batch() is all this takes.

-- As in 16_promotion_functions.sql, but promote_N() returns a batch's undo rows to
-- ferry.promote_batch() (below) instead of writing them into the load's undo table.
create or replace function ferry.promotion_functions_sql(
  p_load    bigint,
  p_tag     text,
  p_tenant  ferry.tenants,
  p_map     ferry.mappings,
  p_pt      ferry.protected_tables,
  p_outputs text[],
  out plan_sql    text,
  out promote_sql text
)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_s        name;
  v_work     text;
  v_plan     text;
  v_rejects  text;
  v_target   text;
  v_tenant_value text;
  v_keys     text[];
  v_nonkeys  text[];
  v_newer    text;
  v_key_join text;
  v_lookup   text;
  v_update_sql  text;
  v_written_key text;
  -- Settings of a batch's UPDATE: rows found by ctid, and no JIT for the cost of the others.
  v_by_ctid_settings text[] := '{enable_seqscan,enable_indexscan,enable_bitmapscan,enable_tidscan,jit}';
  v_by_ctid_values   text[] := '{off,off,off,on,off}';
begin
  v_s := p_tenant.schema_name;
  v_work := ferry.quoted_object(v_s, 'work', p_load);
  v_plan := ferry.quoted_object(v_s, 'plan', p_load);
  v_rejects := ferry.quoted_object(v_s, 'rejects', p_load);
  v_target := format('%I.%I', p_map.target_schema, p_map.target_table);
  v_tenant_value := format('%L::%s', p_tenant.tenant_key, p_pt.tenant_type);
  v_keys := p_map.key_columns;
  if p_map.on_conflict like 'newer:%' then
    v_newer := substr(p_map.on_conflict, 7);
  end if;
  v_nonkeys := array(select o from unnest(p_outputs) with ordinality as x(o, n) where not o = any (v_keys) order by n);
  v_key_join := (select string_agg(format('t.%I = w.%I', k, k), ' and ') from unnest(v_keys) k);

  -- Two ways to the same plan rows. A join, which the planner may make a hash join: one scan
  -- of the target for a load of any size. Or, when ferry.prefers_key_lookups() says so (a
  -- small load into a large target), lookups by key. Disabling hash joins instead was not
  -- enough: where the statistics have not seen the tenant, the planner took its rows for one
  -- and scanned them all again for every work row. The lookups: on PostgreSQL 17 and later,
  -- for a key of one column, one scan of the key index for all the work rows' keys at once
  -- (key = ANY (array)), hashed and joined: in the increment of bench/sync.ts, plan_promotion
  -- took 310 ms instead of 470 (medians of 7 interleaved runs). Before 17, a tenant the
  -- statistics take for a row or two gets the ANY as a filter over all of its rows (1 s for
  -- 5,000 keys among 30,000 rows on PostgreSQL 15), so there, and for a longer key, a LATERAL
  -- subquery that cannot be pulled up looks each work row up. The row found is kept whole
  -- (_row, of the target's type): its before-image is to_jsonb() of a table row, not of the
  -- subquery's record less its _tid (10,000 rows: 30 to 40 ms less, measured alone).
  v_lookup := case
    when cardinality(v_keys) = 1 and current_setting('server_version_num')::integer >= 170000 then format(
      E'    left join (\n'
      '      select t as _row, t.ctid as _tid from %s as t\n'
      '      where t.%I = %s and t.%I = any (array(select w.%I from %s as w))\n'
      '      offset 0  -- kept a subquery: one scan of the key index\n'
      '    ) as t on (t._row).%I = w.%I\n',
      v_target, p_pt.tenant_column, v_tenant_value, v_keys[1], v_keys[1], v_work, v_keys[1], v_keys[1])
    else format(
      E'    left join lateral (\n'
      '      select t as _row, t.ctid as _tid from %s as t where t.%I = %s and %s\n'
      '      offset 0  -- kept a subquery: looked up once per work row\n'
      '    ) as t on true\n',
      v_target, p_pt.tenant_column, v_tenant_value, v_key_join) end;
  plan_sql := format(
    E'create function %I.%I() returns bigint\n'
    'language plpgsql security definer set search_path = public, pg_temp\n'
    'as %s\n'
    'declare\n'
    '  v_rows bigint;\n'
    'begin\n'
    '  if coalesce(current_setting(%L, true), %L) = %L then\n'
    '    insert into %s\n'
    '    select w.*, a._action,\n'
    '           case when a._action = %L then to_jsonb(t._row) end as _before,\n'
    '           t._tid\n'
    '    from %s as w\n'
    '%s'
    '    cross join lateral (select %s as _action) as a;\n'
    '  else\n'
    '    insert into %s\n'
    '    select w.*, a._action,\n'
    '           -- the before-image, for the undo log: only of rows that will change\n'
    '           case when a._action = %L then to_jsonb(t) end as _before,\n'
    '           t.ctid as _tid  -- where promote_N() finds the row again\n'
    '    from %s as w\n'
    '    left join %s as t on t.%I = %s and %s\n'
    '    cross join lateral (select %s as _action) as a;\n'
    '  end if;\n'
    '  get diagnostics v_rows = row_count;\n'
    '  return v_rows;\n'
    'end\n'
    '%s',
    v_s, 'plan_' || p_load, p_tag,
    'pgferry.plan_by_key', '', 'on',
    v_plan, 'update', v_work,
    v_lookup,
    ferry.plan_action_sql(v_nonkeys, p_map.on_conflict, v_newer, '(t._row)', 't._tid'),
    v_plan, 'update', v_work, v_target, p_pt.tenant_column, v_tenant_value, v_key_join,
    ferry.plan_action_sql(v_nonkeys, p_map.on_conflict, v_newer, 't', 't.ctid'),
    p_tag);

  -- The written rows' keys, as the target stores them (a trigger may have changed them).
  v_written_key := format('jsonb_build_object(%s)',
                          (select string_agg(format('%L, t.%I', k, k), ', ') from unnest(v_keys) k));
  -- A batch's planned updates are one UPDATE, each row found again where the plan saw it (its
  -- ctid). Row by row, each UPDATE was a statement of its own: 37 µs a row on PostgreSQL 18,
  -- against 24 µs this way (10,000 rows after a checkpoint: 365 against 240 ms). The batch's
  -- rows are read into an array first; for the UPDATE itself scans other than by ctid are
  -- off, so the only plan left is a nested loop from those rows to the target's tuples by
  -- ctid: a target whose statistics are stale (this load filling it; a tenant the statistics
  -- have not seen yet) can no longer be taken for small and scanned once per row (measured:
  -- minutes for a batch). Only the UPDATE runs with those settings (its triggers too), and a
  -- failed batch's savepoint restores them. A row another writer changed or deleted since the
  -- plan is not at its ctid any more: not updated, and rejected as changed_during_load. None
  -- are planned when the mapping outputs only keys.
  v_update_sql := case when cardinality(v_nonkeys) > 0
    then format(
      E'  if cardinality(v_updates) > 0 then\n'
      '    v_settings := array(select current_setting(s) from unnest(%L::text[]) as s);\n'
      '    perform set_config(s, v, true) from unnest(%L::text[], %L::text[]) as x(s, v);\n'
      '    with written as (\n'
      '      update %s as t\n'
      '      set %s\n'
      '      from unnest(v_updates) as w\n'
      '      where t.ctid = w._tid and t.%I = %s and %s\n'
      '      returning %s as key, w._before as before, t.xmin::text::bigint as xid\n'
      '    )\n'
      '    select count(*), array_agg(key), array_agg(before), array_agg(xid)\n'
      '    into v_updated, v_keys, v_befores, v_xids\n'
      '    from written;\n'
      '    perform set_config(s, v, true) from unnest(%L::text[], v_settings) as x(s, v);\n'
      '    if v_updated > 0 then\n'
      '      undo_action := undo_action || array_fill(%L::text, array[v_updated]::integer[]);\n'
      '      undo_key := undo_key || v_keys;\n'
      '      undo_before := undo_before || v_befores;\n'
      '      undo_xid := undo_xid || v_xids;\n'
      '    end if;\n'
      '  end if;\n',
      v_by_ctid_settings,
      v_by_ctid_settings, v_by_ctid_values,
      v_target,
      (select string_agg(format('%I = w.%I', c, c), ', ') from unnest(v_nonkeys) c),
      p_pt.tenant_column, v_tenant_value, v_key_join,
      v_written_key,
      v_by_ctid_settings,
      'update')
    else '' end;
  -- The batch's plan rows are read once, for its counts and its updates; the rejects and the
  -- inserts read them again only when the batch has some.
  promote_sql := format(
    E'create function %I.%I(\n'
    '  p_lo bigint, p_hi bigint,\n'
    '  out counts bigint[],\n'
    '  -- the undo log of the batch, a row an element: ferry.promote_batch() writes it\n'
    '  out undo_action text[], out undo_key jsonb[], out undo_before jsonb[], out undo_xid bigint[]\n'
    ')\n'
    'language plpgsql security definer set search_path = public, pg_temp\n'
    'as %s\n'
    'declare\n'
    '  v_counts   bigint[];\n'
    '  v_inserted bigint;\n'
    '  v_updated  bigint := 0;\n'
    '  v_updates  %s[];\n'
    '  v_settings text[];\n'
    '  v_keys     jsonb[];\n'
    '  v_befores  jsonb[];\n'
    '  v_xids     bigint[];\n'
    '  v_key      jsonb;\n'
    '  v_xid      bigint;\n'
    'begin\n'
    '  undo_action := %L; undo_key := %L; undo_before := %L; undo_xid := %L;\n'
    '  select array[count(*) filter (where p._action = %L),\n'
    '               count(*) filter (where p._action = %L),\n'
    '               count(*) filter (where p._action in (%L, %L)),\n'
    '               count(*) filter (where p._action = %L)],\n'
    '         %s\n'
    '  into v_counts, v_updates\n'
    '  from %s as p\n'
    '  where p._line between p_lo and p_hi;\n\n'
    '  if v_counts[4] > 0 then\n'
    '    insert into %s (line, value, rule, message)\n'
    '    select p._line, jsonb_build_object(%s)::text, %L, %L\n'
    '    from %s as p\n'
    '    where p._line between p_lo and p_hi and p._action = %L;\n'
    '  end if;\n\n'
    '  -- Planned inserts, written without a join with the target. The undo log keeps their\n'
    '  -- keys, one array a batch, and the id of the transaction that wrote them: a row changed\n'
    '  -- later has another xmin, which is how rollback tells.\n'
    '  if v_counts[1] > 0 then\n'
    '    with written as (\n'
    '      insert into %s as t (%I, %s)\n'
    '      select %s, %s\n'
    '      from %s as w\n'
    '      where w._line between p_lo and p_hi and w._action = %L\n'
    '      returning %s as key, t.xmin::text::bigint as xid\n'
    '    )\n'
    '    select count(*), jsonb_agg(key), max(xid) into v_inserted, v_key, v_xid from written;\n'
    '    if v_inserted > 0 then\n'
    '      undo_action := undo_action || %L::text;\n'
    '      undo_key := undo_key || v_key;\n'
    '      undo_before := undo_before || null::jsonb;\n'
    '      undo_xid := undo_xid || v_xid;\n'
    '    end if;\n'
    '  end if;\n\n'
    '  -- Planned updates, by ctid; the undo log keeps each before-image.\n'
    '%s\n'
    '  if coalesce(v_inserted, 0) <> v_counts[1] then\n'
    '    raise exception using errcode = %L, message = (v_counts[1] - coalesce(v_inserted, 0)) || %L;\n'
    '  end if;\n'
    '  if v_updated <> v_counts[2] then\n'
    '    raise exception using errcode = %L, message = (v_counts[2] - v_updated) || %L;\n'
    '  end if;\n'
    '  counts := v_counts;\n'
    'end\n'
    '%s',
    v_s, 'promote_' || p_load, p_tag,
    v_plan,
    '{}', '{}', '{}', '{}',
    'insert', 'update', 'unchanged', 'skip', 'conflict',
    case when cardinality(v_nonkeys) > 0 then format('array_agg(p) filter (where p._action = %L)', 'update')
         else 'null' end,
    v_plan,
    v_rejects,
    (select string_agg(format('%L, p.%I', k, k), ', ') from unnest(v_keys) k),
    'conflict', 'the key already exists for this tenant (on_conflict: reject)',
    v_plan, 'conflict',
    v_target, p_pt.tenant_column, (select string_agg(quote_ident(o), ', ') from unnest(p_outputs) o),
    v_tenant_value, (select string_agg(format('w.%I', o), ', ') from unnest(p_outputs) o),
    v_plan, 'insert',
    v_written_key,
    'inserts',
    v_update_sql,
    'P0002',
    format(' row(s) planned for insert were not inserted into %s: skipped by a trigger', v_target),
    'P0002',
    format(' row(s) planned for update were not updated in %s: changed or deleted by another writer during the load, or skipped by a trigger',
           v_target),
    p_tag);
end
$$;

-- One batch: {inserted, updated, unchanged, conflicts}; its undo rows into ferry.undo.
create or replace function ferry.promote_batch(p_load bigint, p_lo bigint, p_hi bigint) returns bigint[]
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_promote regprocedure := ferry.tenant_function(p_load, 'promote', 'bigint, bigint');
  v_map     ferry.mappings;
  v_counts  bigint[];
begin
  if (select p.prorettype from pg_proc p where p.oid = v_promote) = 'bigint[]'::regtype then
    -- compiled before this migration: it writes the load's undo table itself
    execute format('select %s($1, $2)', v_promote::oid::regproc) into v_counts using p_lo, p_hi;
    return v_counts;
  end if;
  select m.* into strict v_map from ferry.mappings m join ferry.loads l on l.mapping_id = m.id where l.id = p_load;
  execute format(
    'with batch as materialized (
       select * from %s($1, $2)
     ),
     undo as (
       insert into ferry.undo (load_id, target_schema, target_table, action, key, before, xid)
       select $3, $4, $5, u.action, u.key, u.before, u.xid
       from batch
       cross join unnest(batch.undo_action, batch.undo_key, batch.undo_before, batch.undo_xid)
         as u(action, key, before, xid)
     )
     select counts from batch',
    v_promote::oid::regproc)
  into v_counts
  using p_lo, p_hi, p_load, v_map.target_schema, v_map.target_table;
  return v_counts;
end
$$;
