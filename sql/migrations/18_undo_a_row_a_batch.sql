-- An increment's undo log written in one row a batch, on PostgreSQL 18 (issue 6).
--
-- In a sync's increment (10,000 changed rows of a 1,000,000-row target, bench/sync.ts) the undo
-- log cost more than any other part of the promotion but the UPDATE itself: each updated row's
-- before-image was made JSON in the plan (to_jsonb), carried through the plan table, an array
-- and the UPDATE's RETURNING, and written as an undo row of its own (one heap and one index
-- entry each). On PostgreSQL 18 the UPDATE returns the rows as they were (RETURNING OLD), so
-- the plan keeps no before-image, and a batch's before-images go into ferry.undo as one row
-- (action 'updates'): the keys as a JSON array (as 'inserts' has them), the rows as the text of
-- an array of the target's type (before_rows), and that type's columns as they were
-- (row_type), so that a column added or dropped since does not stop a rollback. Measured on
-- the bench's data after a checkpoint, the plan and the UPDATE of 10,000 rows with their undo
-- rows alone (medians of 6 interleaved runs): 440 ms as before, 403 ms with the before-images
-- taken from RETURNING OLD but still JSON an undo row each, 351 ms kept as one row. In whole
-- increments (6 interleaved, on a busier machine) plan and batches went from 590 to 540 ms.
--
-- ferry.undo_log(load) reads a load's undo log as it always looked, a row per updated row, and
-- is what rollback reads. Before PostgreSQL 18, and for loads compiled before this migration,
-- the undo rows are written as before.

alter table ferry.undo
  add column before_rows text,
  add column row_type text,
  drop constraint undo_action_check,
  add constraint undo_action_check check (action in ('insert', 'update', 'inserts', 'delete', 'updates')),
  add constraint undo_updates_rows check (action <> 'updates' or (before_rows is not null and row_type is not null));
comment on table ferry.undo is
  'what undoes a load: before-images of the rows it updated (action update, one row each; or '
  'action updates, one row a batch: keys a JSON array, the rows in before_rows), the keys of the '
  'rows it inserted (action inserts: key is a JSON array of keys, one undo row a batch) and the '
  'rows a mirror sync deleted (action delete); xid is the xmin the rows were written with. '
  'ferry.undo_log(load) reads it a row per row.';
-- Written once, read only by a rollback: not worth compressing on the way in.
alter table ferry.undo alter column before_rows set storage external;
comment on column ferry.undo.before_rows is
  'action updates: the before-images of a batch''s updated rows, the text of an array of row_type, in the order of key';
comment on column ferry.undo.row_type is
  'action updates: the target''s columns when the load wrote them ("name type, ..."), what before_rows reads as';

-- A table's columns as a composite type's definition: "name type, ...", in the order of its rows.
create function ferry.row_type_of(p_table regclass) returns text
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

-- A load's undo log, a row per updated row as before this migration: each 'updates' row read
-- back through a temporary type of the columns it was written with.
create function ferry.undo_log(p_load bigint)
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
