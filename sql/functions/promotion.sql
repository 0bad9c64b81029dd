-- Faster increments: a small load into a large target (issue 6, a sync's 1% increment).
--
-- What such a load cost followed the size of the target instead of its own; three changes:
--   * plan: plan_N() (6_faster_checks_and_promotion.sql) left-joins the work rows to the
--     tenant's rows of the target, to tell insert, update and unchanged apart. The planner
--     prices index lookups as reads from disk (random_page_cost), so for 10,000 pulled rows
--     against a target of 1,000,000 it chose a hash join, which reads the whole target: 370 ms,
--     where a nested loop of index lookups took 83 ms (PostgreSQL 15, bench/sync.ts). So when
--     the work table holds under 1/16 of the target's rows (statistics scaled to the current size) and a
--     btree index of the target leads with the mapping's key columns (the tenant column among
--     them or not), plan_N() looks each work row up by key instead (a LATERAL subquery, see
--     compile_load below). At 1/16 the lookups still cost less than the scan (about 8 µs a
--     lookup against 0.3 µs a scanned row, measured).
--   * promote: a batch's updates are one UPDATE that finds each row at the ctid its plan saw
--     it at, instead of one UPDATE a row by key (compile_load, below). The plan table keeps
--     that ctid (_tid), which reject_promotion_row leaves out of a reject's value.
--   * statistics: the work and plan tables are analyzed only for the columns later queries
--     join or filter on. Statistics of every column, the before-images' JSON among them, took
--     a third of an increment's plan step.

-- Whether the target has a btree index whose leading columns are the keys, or the keys and
-- the tenant column, in any order: the index a nested loop looks each work row up in.
create or replace function ferry.has_key_index(p_target regclass, p_keys text[], p_tenant_column name) returns boolean
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select exists (
    select
    from pg_index i
    join pg_class ic on ic.oid = i.indexrelid
    join pg_am am on am.oid = ic.relam and am.amname = 'btree'
    cross join lateral (values (p_keys), (p_keys || p_tenant_column::text)) as wanted(cols)
    where i.indrelid = p_target
      and i.indisvalid
      and i.indpred is null
      and (
        select array_agg(a.attname::text order by a.attname::text)
        from unnest(i.indkey::int2[]) with ordinality as k(attnum, n)
        join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
        where k.n <= cardinality(wanted.cols)
      ) = (select array_agg(c order by c) from unnest(wanted.cols) as c)
  )
$$;

-- Whether plan_N() of a load should look its rows up in the target's key index.
create or replace function ferry.prefers_key_lookups(p_load bigint) returns boolean
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant      ferry.tenants := ferry.load_tenant(p_load);
  v_map         ferry.mappings;
  v_pt          ferry.protected_tables;
  v_target      regclass;
  v_work_rows   float8;
  v_target_rows float8;
begin
  select m.* into strict v_map from ferry.mappings m join ferry.loads l on l.mapping_id = m.id where l.id = p_load;
  select * into strict v_pt from ferry.protected_tables
  where schema_name = v_map.target_schema and table_name = v_map.target_table;
  v_target := format('%I.%I', v_map.target_schema, v_map.target_table)::regclass;
  if not ferry.has_key_index(v_target, v_map.key_columns, v_pt.tenant_column) then
    return false;
  end if;
  -- The work table was analyzed at the end of the transform.
  select reltuples into v_work_rows from pg_class
  where oid = ferry.quoted_object(v_tenant.schema_name, 'work', p_load)::regclass;
  -- The target's rows as the planner estimates them: its statistics' rows a page, times the
  -- pages it has now (a target filled since it was last analyzed is not taken for empty),
  -- summed over its partitions. Read from the catalog, not by EXPLAIN: row-level security
  -- would estimate what the loader itself may see. Never analyzed: 0, the plan as before.
  select coalesce(sum(c.reltuples / c.relpages
                      * (pg_relation_size(c.oid) / current_setting('block_size')::float8)), 0)
  into v_target_rows
  from pg_class c
  where c.oid in (select v_target union all select p.relid from pg_partition_tree(v_target) as p where p.isleaf)
    and c.relpages > 0 and c.reltuples >= 0;
  return v_work_rows >= 0 and v_work_rows * 16 < v_target_rows;
end
$$;

-- Runs a load's plan_N() asking it to look each work row up by key (see compile_load below;
-- plan_N() of a load compiled before this migration ignores the setting). SET on the
-- function restores it when it returns or fails.
create or replace function ferry.plan_by_key_lookups(p_plan regprocedure) returns void
language plpgsql
set search_path = pg_catalog, pg_temp
set pgferry.plan_by_key = 'on'
as $$
begin
  execute format('select %s()', p_plan::oid::regproc);
end
$$;

-- Promotion's functions compiled by a function of their own, and two ways they got faster (issue 6).
--
-- compile_load (15_faster_increments.sql) wrote a load's plan_N() and promote_N() itself, so
-- every change to them took a whole new copy of compile_load. Their SQL now comes from
-- ferry.promotion_functions_sql(); compile_load below is 15's, less that part, and a later
-- change to promotion redefines that function alone. What changed in the functions themselves,
-- for a sync's increment (10,000 changed rows of a 1,000,000-row target, bench/sync.ts):
--   * plan_N(), by key lookups: on PostgreSQL 17 and later, a key of one column is looked up
--     in one scan of the key index (= ANY of the work rows' keys) instead of once per work row
--     (PostgreSQL 15 and 16 keep the lookups: see below); and the before-image is to_jsonb()
--     of the target's row itself, not of a record built around it.
--   * promote_N() reads a batch's plan rows once for its counts and its updates (it read them
--     four times), and again for rejects or inserts only when the batch has some.

-- What promotion will do with a work row w, given its target row (p_row: the row's alias, or
-- an expression of the target's row type; p_found: null when the row is absent).
create or replace function ferry.plan_action_sql(
  p_nonkeys     text[],
  p_on_conflict text,
  p_newer       text,
  p_row         text,
  p_found       text
) returns text
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
  select format('case when %s is null then %L', p_found, 'insert')
    || case when cardinality(p_nonkeys) > 0
         then format(' when (%s) is not distinct from (%s) then %L',
                     (select string_agg(format('w.%I', c), ', ') from unnest(p_nonkeys) c),
                     (select string_agg(format('%s.%I', p_row, c), ', ') from unnest(p_nonkeys) c),
                     'unchanged')
         else format(' when true then %L', 'unchanged') end
    || case
         when p_on_conflict = 'skip' then format(' else %L end', 'skip')
         when p_on_conflict = 'reject' then format(' else %L end', 'conflict')
         when p_newer is not null then format(
           ' when w.%1$I > %2$s.%1$I or (%2$s.%1$I is null and w.%1$I is not null) then %3$L else %4$L end',
           p_newer, p_row, 'update', 'skip')
         else format(' else %L end', 'update') end
$$;

-- A table's columns as a composite type's definition: "name type, ...", in the order of its rows.
create or replace function ferry.row_type_of(p_table regclass) returns text
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)), ', ' order by a.attnum)
  from pg_attribute a
  where a.attrelid = p_table and a.attnum > 0 and not a.attisdropped
$$;

-- As in 17_undo_from_promote_batch.sql; on PostgreSQL 18 the plan keeps no before-image, and
-- a batch's updates return theirs, as one undo row (out undo_rows).
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
  -- PostgreSQL 18: the UPDATE returns the rows as they were (RETURNING OLD); the plan keeps no
  -- before-image, and the batch's go to the undo log as one text array.
  v_old_in_returning boolean := current_setting('server_version_num')::integer >= 180000;
  v_old      text := 'pgferry_before';
  v_undo_returning text;
  v_undo_collect   text;
  v_undo_append    text;
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
  -- RETURNING's name for the row before: one no column of the target has (a column would win).
  while exists (select from pg_attribute a
                where a.attrelid = v_target::regclass and a.attname = v_old and a.attnum > 0) loop
    v_old := v_old || '_';
  end loop;

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
    '           %s as _before,\n'
    '           t._tid\n'
    '    from %s as w\n'
    '%s'
    '    cross join lateral (select %s as _action) as a;\n'
    '  else\n'
    '    insert into %s\n'
    '    select w.*, a._action,\n'
    '           -- the before-image, for the undo log: only of rows that will change\n'
    '           %s as _before,\n'
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
    v_plan, case when v_old_in_returning then 'null::jsonb'
                 else format('case when a._action = %L then to_jsonb(t._row) end', 'update') end,
    v_work,
    v_lookup,
    ferry.plan_action_sql(v_nonkeys, p_map.on_conflict, v_newer, '(t._row)', 't._tid'),
    v_plan, case when v_old_in_returning then 'null::jsonb'
                 else format('case when a._action = %L then to_jsonb(t) end', 'update') end,
    v_work, v_target, p_pt.tenant_column, v_tenant_value, v_key_join,
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
  -- How the batch's undo rows are kept: on PostgreSQL 18, one row for the batch (the keys as a
  -- JSON array, the rows before as the text of an array, from RETURNING OLD); before it, a row
  -- per updated row, its before-image the plan's.
  if v_old_in_returning then
    v_undo_returning := format('with (old as %I) %s as key, %I as before, t.xmin::text::bigint as xid',
                               v_old, v_written_key, v_old);
    v_undo_collect :=
      E'    select count(*), jsonb_agg(key), array_agg(before)::text, max(xid)\n'
      '    into v_updated, v_key, v_rows, v_xid\n';
    v_undo_append := format(
      E'      undo_action := undo_action || %L::text;\n'
      '      undo_key := undo_key || v_key;\n'
      '      undo_before := undo_before || null::jsonb;\n'
      '      undo_xid := undo_xid || v_xid;\n'
      '      undo_rows := undo_rows || v_rows;\n',
      'updates');
  else
    v_undo_returning := format('%s as key, w._before as before, t.xmin::text::bigint as xid', v_written_key);
    v_undo_collect :=
      E'    select count(*), array_agg(key), array_agg(before), array_agg(xid)\n'
      '    into v_updated, v_keys, v_befores, v_xids\n';
    v_undo_append := format(
      E'      undo_action := undo_action || array_fill(%L::text, array[v_updated]::integer[]);\n'
      '      undo_key := undo_key || v_keys;\n'
      '      undo_before := undo_before || v_befores;\n'
      '      undo_xid := undo_xid || v_xids;\n'
      '      undo_rows := undo_rows || array_fill(null::text, array[v_updated]::integer[]);\n',
      'update');
  end if;
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
      '      returning %s\n'
      '    )\n'
      '%s'
      '    from written;\n'
      '    perform set_config(s, v, true) from unnest(%L::text[], v_settings) as x(s, v);\n'
      '    if v_updated > 0 then\n'
      '%s'
      '    end if;\n'
      '  end if;\n',
      v_by_ctid_settings,
      v_by_ctid_settings, v_by_ctid_values,
      v_target,
      (select string_agg(format('%I = w.%I', c, c), ', ') from unnest(v_nonkeys) c),
      p_pt.tenant_column, v_tenant_value, v_key_join,
      v_undo_returning,
      v_undo_collect,
      v_by_ctid_settings,
      v_undo_append)
    else '' end;
  -- The batch's plan rows are read once, for its counts and its updates; the rejects and the
  -- inserts read them again only when the batch has some.
  promote_sql := format(
    E'create function %I.%I(\n'
    '  p_lo bigint, p_hi bigint,\n'
    '  out counts bigint[],\n'
    '  -- the undo log of the batch, a row an element: ferry.promote_batch() writes it\n'
    '  out undo_action text[], out undo_key jsonb[], out undo_before jsonb[], out undo_xid bigint[],\n'
    '  out undo_rows text[]  -- action updates: the rows before, as the text of an array\n'
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
    '  v_rows     text;\n'
    'begin\n'
    '  undo_action := %L; undo_key := %L; undo_before := %L; undo_xid := %L; undo_rows := %L;\n'
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
    '      undo_rows := undo_rows || null::text;\n'
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
    '{}', '{}', '{}', '{}', '{}',
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

-- plan: as in 5_steps.sql, choosing key lookups for a small load into a large target. The plan
-- table is analyzed for the columns promote_N() selects its batches by, not its before-images
-- too (a third of the time of an increment's plan went to statistics on that JSON).
create or replace function ferry.plan_promotion(p_load bigint, p_batch_size integer)
returns table (lo bigint, hi bigint, rows bigint)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant ferry.tenants := ferry.load_tenant(p_load);
  v_plan   regprocedure;
begin
  update ferry.loads set status = 'promoting' where id = p_load;
  perform ferry.lock_target(p_load);
  v_plan := ferry.tenant_function(p_load, 'plan', '');
  if ferry.prefers_key_lookups(p_load) then
    perform ferry.plan_by_key_lookups(v_plan);
  else
    execute format('select %s()', v_plan::oid::regproc);
  end if;
  execute format('analyze %s (_line, _action)', ferry.quoted_object(v_tenant.schema_name, 'plan', p_load));
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
create or replace function ferry.split_batch(p_load bigint, p_lo bigint, p_hi bigint)
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

-- One batch: {inserted, updated, unchanged, conflicts}; its undo rows into ferry.undo.
create or replace function ferry.promote_batch(p_load bigint, p_lo bigint, p_hi bigint) returns bigint[]
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_promote regprocedure := ferry.tenant_function(p_load, 'promote', 'bigint, bigint');
  v_fn      pg_proc;
  v_map     ferry.mappings;
  v_counts  bigint[];
begin
  select * into strict v_fn from pg_proc p where p.oid = v_promote;
  if v_fn.prorettype = 'bigint[]'::regtype then
    -- compiled before 17_undo_from_promote_batch.sql: it writes the load's undo table itself
    execute format('select %s($1, $2)', v_promote::oid::regproc) into v_counts using p_lo, p_hi;
    return v_counts;
  end if;
  select m.* into strict v_map from ferry.mappings m join ferry.loads l on l.mapping_id = m.id where l.id = p_load;
  if not 'undo_rows' = any (v_fn.proargnames) then
    -- compiled before this migration: an undo row per updated row
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
  end if;
  execute format(
    'with batch as materialized (
       select * from %s($1, $2)
     ),
     undo as (
       insert into ferry.undo (load_id, target_schema, target_table, action, key, before, xid, before_rows, row_type)
       select $3, $4, $5, u.action, u.key, u.before, u.xid, u.before_rows,
              case when u.before_rows is not null then $6 end
       from batch
       cross join unnest(batch.undo_action, batch.undo_key, batch.undo_before, batch.undo_xid, batch.undo_rows)
         as u(action, key, before, xid, before_rows)
     )
     select counts from batch',
    v_promote::oid::regproc)
  into v_counts
  using p_lo, p_hi, p_load, v_map.target_schema, v_map.target_table,
        ferry.row_type_of(format('%I.%I', v_map.target_schema, v_map.target_table)::regclass);
  return v_counts;
end
$$;

-- As in 5_steps.sql; the plan's _tid is not part of the rejected row's value either.
create or replace function ferry.reject_promotion_row(
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
  execute format('select (to_jsonb(p) - %L - %L - %L - %L)::text from %s as p where _line = $1',
                 '_line', '_action', '_before', '_tid', ferry.quoted_object(v_tenant.schema_name, 'plan', p_load))
  into v_value
  using p_line;
  execute format('select (to_jsonb(st) - %L)::text from %s as st where _line = $1',
                 '_line', ferry.quoted_object(v_tenant.schema_name, 'stage', p_load))
  into v_raw
  using p_line;
  perform ferry.add_reject(p_load, 'promote', p_line, p_column, v_value, p_rule, p_message, v_raw);
end
$$;

-- A load's undo log, a row per updated row as before this migration: each 'updates' row read
-- back through a temporary type of the columns it was written with.
create or replace function ferry.undo_log(p_load bigint)
returns table (action text, key jsonb, before jsonb, xid bigint)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_row_type text;
  v_type     text;
  v_n        integer := 0;
begin
  return query
  select u.action, u.key, u.before, u.xid from ferry.undo u where u.load_id = p_load and u.action <> 'updates';
  for v_row_type in
    select distinct u.row_type from ferry.undo u where u.load_id = p_load and u.action = 'updates'
  loop
    v_n := v_n + 1;
    v_type := format('pgferry_undo_%s_%s', p_load, v_n);
    execute format('drop type if exists pg_temp.%I', v_type);
    execute format('create type pg_temp.%I as (%s)', v_type, v_row_type);
    return query execute format(
      'select %L::text, k.key, to_jsonb(b.r), u.xid
       from ferry.undo as u
       cross join lateral jsonb_array_elements(u.key) with ordinality as k (key, n)
       join lateral (
         select r, row_number() over () as n from unnest(u.before_rows::pg_temp.%I[]) as r
       ) as b on b.n = k.n
       where u.load_id = $1 and u.action = %L and u.row_type = $2',
      'update', v_type, 'updates')
    using p_load, v_row_type;
    execute format('drop type pg_temp.%I', v_type);
  end loop;
end
$$;

-- As in 5_steps.sql, with the xid column.
create or replace function ferry.finish_promotion(p_load bigint, p_inserted bigint, p_updated bigint, p_unchanged bigint)
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
    'insert into ferry.undo (load_id, target_schema, target_table, action, key, before, xid)
     select $1, $2, $3, action, key, before, xid from %s',
    ferry.quoted_object(v_tenant.schema_name, 'undo', p_load))
  using p_load, v_map.target_schema, v_map.target_table;
  perform ferry.collect_rejects(p_load, 'promote');
  update ferry.loads
  set inserted = p_inserted, updated = p_updated, unchanged = p_unchanged
  where id = p_load;
end
$$;
