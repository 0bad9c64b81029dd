-- Promotion: the plan and the batches that write a load's work rows into its target.
--
--   ferry.plan_promotion()   runs the load's plan_<load>(): each work row with what promotion
--                            will do with it (insert, update, unchanged, skip, conflict) and
--                            where its target row is (ctid); returns the batches.
--   ferry.promote_batch()    runs promote_<load>(lo, hi) on one batch, as the tenant, and
--                            writes the batch's undo rows into ferry.undo.
--   ferry.finish_promotion() collects the rejects and records the counts.
--
-- plan_<load>() and promote_<load>() are compiled per load by compile_load, from the SQL that
-- ferry.promotion_functions_sql() writes (below). Each is written for the server it is
-- compiled on: what differs by version is chosen there, at compile time, so the functions of
-- this file are the same on every server version.
--
-- A small load into a large target (a sync's increment) costs what the load is, not what the
-- target is:
--   * plan: a join of the work rows to the tenant's rows of the target may become a hash join,
--     which reads the whole target. The planner prices index lookups as reads from disk
--     (random_page_cost) and picks it even for a few thousand rows against a million. So when
--     the work table holds under 1/16 of the target's rows and a btree index of the target
--     leads with the mapping's key columns, plan_<load>() looks each work row up by key
--     instead. At 1/16 the lookups still cost less than the scan.
--   * promote: a batch's updates are one UPDATE that finds each row at the ctid its plan saw
--     it at, rather than one UPDATE a row by key.
--   * statistics: the work and plan tables are analyzed only for the columns later queries
--     join or filter on, not the before-images' JSON.

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

-- Whether a load's plan_<load>() should look its work rows up in the target's key index: the
-- target has such an index and the work table holds under 1/16 of the target's rows.
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
  -- would estimate what the loader itself may see. Never analyzed: 0, so the join.
  select coalesce(sum(c.reltuples / c.relpages
                      * (pg_relation_size(c.oid) / current_setting('block_size')::float8)), 0)
  into v_target_rows
  from pg_class c
  where c.oid in (select v_target union all select p.relid from pg_partition_tree(v_target) as p where p.isleaf)
    and c.relpages > 0 and c.reltuples >= 0;
  return v_work_rows >= 0 and v_work_rows * 16 < v_target_rows;
end
$$;

-- Runs a load's plan_<load>() asking it to look each work row up by key (the setting
-- pgferry.plan_by_key), and turns the setting off again. Set in the body, not by a SET clause
-- on the function: only a superuser may put a custom setting in a function's SET clause. A
-- plan that fails aborts the caller's transaction or savepoint, which restores the setting.
create or replace function ferry.plan_by_key_lookups(p_plan regprocedure) returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  perform set_config('pgferry.plan_by_key', 'on', true);
  execute format('select %s()', p_plan::oid::regproc);
  perform set_config('pgferry.plan_by_key', 'off', true);
end
$$;

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

-- The key of a row the promotion wrote (alias t), as the target stores it (a trigger may
-- have changed it): a JSON object of the key columns.
create or replace function ferry.written_key_sql(p_keys text[]) returns text
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
  select format('jsonb_build_object(%s)', (select string_agg(format('%L, t.%I', k, k), ', ') from unnest(p_keys) k))
$$;

-- plan_<load>(): fills the plan table with every work row that promotion must write or reject
-- (rows unchanged or kept by skip are only counted: ferry.unwritten_rows), its _action (ferry.plan_action_sql),
-- its _before (the before-image of a row it will update, for the undo log) and its _tid (the
-- ctid of its target row, where promote_<load>() finds the row again). p_tag dollar-quotes
-- the body.
--
-- Two ways to the same plan rows, chosen when it runs by the setting pgferry.plan_by_key
-- (ferry.plan_by_key_lookups() sets it when ferry.prefers_key_lookups() says so):
--   * a join, which the planner may make a hash join: one scan of the target, for a load of
--     any size;
--   * lookups by key, for a small load into a large target. Disabling hash joins instead is
--     not enough: where the statistics have not seen the tenant, the planner takes its rows
--     for one and scans them all again for every work row. On PostgreSQL 17 and later a key
--     of one column is looked up in one scan of the key index, for all the work rows' keys at
--     once (key = any (array)), hashed and joined. Before 17, a tenant the statistics take
--     for a row or two gets the ANY as a filter over all of its rows; so there, and for a key
--     of several columns, a LATERAL subquery that cannot be pulled up looks each work row up.
--     The row found is kept whole (_row, of the target's type): to_jsonb() of a table row
--     costs less than of the subquery's record.
-- On PostgreSQL 18 the plan keeps no before-image: promote_<load>() has its UPDATE return the
-- rows as they were (RETURNING OLD), which spares the plan a to_jsonb() of every row it plans
-- to update and lets a batch's updates be one undo row.
create or replace function ferry.plan_function_sql(
  p_load    bigint,
  p_tag     text,
  p_tenant  ferry.tenants,
  p_map     ferry.mappings,
  p_pt      ferry.protected_tables,
  p_outputs text[]
) returns text
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_work     text := ferry.quoted_object(p_tenant.schema_name, 'work', p_load);
  v_target   text := format('%I.%I', p_map.target_schema, p_map.target_table);
  v_tenant_value text := format('%L::%s', p_tenant.tenant_key, p_pt.tenant_type);
  v_keys     text[] := p_map.key_columns;
  v_key_join text := (select string_agg(format('t.%I = w.%I', k, k), ' and ') from unnest(p_map.key_columns) k);
  v_nonkeys  text[] := array(select o from unnest(p_outputs) with ordinality as x(o, n)
                             where not o = any (p_map.key_columns) order by n);
  v_newer    text := case when p_map.on_conflict like 'newer:%' then substr(p_map.on_conflict, 7) end;
  v_version  integer := current_setting('server_version_num')::integer;
  v_lookup   text;
begin
  if cardinality(v_keys) = 1 and v_version >= 170000 then
    v_lookup := format($sql$    left join (
      select t as _row, t.ctid as _tid from %1$s as t
      where t.%2$I = %3$s and t.%4$I = any (array(select w.%4$I from %5$s as w))
      offset 0  -- kept a subquery: one scan of the key index
    ) as t on (t._row).%4$I = w.%4$I$sql$,
      v_target, p_pt.tenant_column, v_tenant_value, v_keys[1], v_work);
  else
    v_lookup := format($sql$    left join lateral (
      select t as _row, t.ctid as _tid from %1$s as t where t.%2$I = %3$s and %4$s
      offset 0  -- kept a subquery: looked up once per work row
    ) as t on true$sql$,
      v_target, p_pt.tenant_column, v_tenant_value, v_key_join);
  end if;

  return format($sql$create function %1$I.%2$I() returns bigint
language plpgsql security definer set search_path = public, pg_temp
as %3$s
declare
  v_rows bigint;
begin
  if coalesce(current_setting('pgferry.plan_by_key', true), '') = 'on' then
    insert into %4$s
    select w.*, a._action,
           %5$s as _before,
           t._tid
    from %6$s as w
%7$s
    cross join lateral (select %8$s as _action) as a
    where a._action not in ('unchanged', 'skip');
  else
    insert into %4$s
    select w.*, a._action,
           -- the before-image, for the undo log: only of rows that will change
           %9$s as _before,
           t.ctid as _tid  -- where promote_N() finds the row again
    from %6$s as w
    left join %10$s as t on t.%11$I = %12$s and %13$s
    cross join lateral (select %14$s as _action) as a
    where a._action not in ('unchanged', 'skip');
  end if;
  get diagnostics v_rows = row_count;
  return v_rows;
end
%3$s$sql$,
    p_tenant.schema_name, 'plan_' || p_load, p_tag,                                     -- 1 2 3
    ferry.quoted_object(p_tenant.schema_name, 'plan', p_load),                           -- 4
    case when v_version >= 180000 then 'null::jsonb'                                     -- 5
         else $sql$case when a._action = 'update' then to_jsonb(t._row) end$sql$ end,
    v_work,                                                                              -- 6
    v_lookup,                                                                            -- 7
    ferry.plan_action_sql(v_nonkeys, p_map.on_conflict, v_newer, '(t._row)', 't._tid'),  -- 8
    case when v_version >= 180000 then 'null::jsonb'                                     -- 9
         else $sql$case when a._action = 'update' then to_jsonb(t) end$sql$ end,
    v_target, p_pt.tenant_column, v_tenant_value, v_key_join,                            -- 10 11 12 13
    ferry.plan_action_sql(v_nonkeys, p_map.on_conflict, v_newer, 't', 't.ctid'));        -- 14
end
$$;

-- The part of promote_<load>() that writes a batch's planned updates, and their undo log;
-- empty when the mapping outputs only keys (nothing is ever planned for update).
--
-- The updates are one UPDATE, each row found again where the plan saw it (its ctid), which
-- costs less than an UPDATE statement a row. The batch's rows are read into an array first;
-- for the UPDATE itself scans other than by ctid are off, so the only plan left is a nested
-- loop from those rows to the target's tuples by ctid: a target whose statistics are stale
-- (this load filling it; a tenant the statistics have not seen yet) cannot be taken for small
-- and scanned once per row. Only the UPDATE runs with those settings (its triggers too), and
-- a failed batch's savepoint restores them. A row another writer changed or deleted since
-- the plan is not at its ctid any more: it is not updated, and promote_<load>() fails.
--
-- The undo log of the updates: on PostgreSQL 18, one undo row for the batch, action
-- 'updates' (the keys as a JSON array, the rows before as the text of an array, from
-- RETURNING OLD); before 18, an undo row per updated row, action 'update', its before-image
-- the plan's.
create or replace function ferry.promote_updates_sql(
  p_tenant  ferry.tenants,
  p_map     ferry.mappings,
  p_pt      ferry.protected_tables,
  p_nonkeys text[]
) returns text
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_target      text := format('%I.%I', p_map.target_schema, p_map.target_table);
  v_written_key text := ferry.written_key_sql(p_map.key_columns);
  -- The UPDATE's settings: rows found by ctid, and no JIT for the cost of the other plans.
  v_settings    text[] := '{enable_seqscan,enable_indexscan,enable_bitmapscan,enable_tidscan,jit}';
  v_values      text[] := '{off,off,off,on,off}';
  -- RETURNING's name for the row before: one no column of the target has (a column would win).
  v_old         text := 'pgferry_before';
  v_returning   text;
  v_collect     text;
  v_append      text;
begin
  if cardinality(p_nonkeys) = 0 then
    return '';
  end if;
  if current_setting('server_version_num')::integer >= 180000 then
    while exists (select from pg_attribute a
                  where a.attrelid = v_target::regclass and a.attname = v_old and a.attnum > 0) loop
      v_old := v_old || '_';
    end loop;
    v_returning := format('with (old as %1$I) %2$s as key, %1$I as before, t.xmin::text::bigint as xid',
                          v_old, v_written_key);
    v_collect := $sql$    select count(*), jsonb_agg(key), array_agg(before)::text, max(xid)
    into v_updated, v_key, v_rows, v_xid$sql$;
    v_append := $sql$      undo_action := undo_action || 'updates'::text;
      undo_key := undo_key || v_key;
      undo_before := undo_before || null::jsonb;
      undo_xid := undo_xid || v_xid;
      undo_rows := undo_rows || v_rows;$sql$;
  else
    v_returning := format('%s as key, w._before as before, t.xmin::text::bigint as xid', v_written_key);
    v_collect := $sql$    select count(*), array_agg(key), array_agg(before), array_agg(xid)
    into v_updated, v_keys, v_befores, v_xids$sql$;
    v_append := $sql$      undo_action := undo_action || array_fill('update'::text, array[v_updated]::integer[]);
      undo_key := undo_key || v_keys;
      undo_before := undo_before || v_befores;
      undo_xid := undo_xid || v_xids;
      undo_rows := undo_rows || array_fill(null::text, array[v_updated]::integer[]);$sql$;
  end if;

  return format($sql$  if cardinality(v_updates) > 0 then
    v_settings := array(select current_setting(s) from unnest(%1$L::text[]) as s);
    perform set_config(s, v, true) from unnest(%1$L::text[], %2$L::text[]) as x(s, v);
    with written as (
      update %3$s as t
      set %4$s
      from unnest(v_updates) as w
      where t.ctid = w._tid and t.%5$I = %6$s and %7$s
      returning %8$s
    )
%9$s
    from written;
    perform set_config(s, v, true) from unnest(%1$L::text[], v_settings) as x(s, v);
    if v_updated > 0 then
%10$s
    end if;
  end if;
$sql$,
    v_settings, v_values,                                                                -- 1 2
    v_target,                                                                            -- 3
    (select string_agg(format('%I = w.%I', c, c), ', ') from unnest(p_nonkeys) c),       -- 4
    p_pt.tenant_column, format('%L::%s', p_tenant.tenant_key, p_pt.tenant_type),         -- 5 6
    (select string_agg(format('t.%I = w.%I', k, k), ' and ') from unnest(p_map.key_columns) k),  -- 7
    v_returning, v_collect, v_append);                                                   -- 8 9 10
end
$$;

-- promote_<load>(lo, hi): promotes the plan rows of lines lo to hi, and returns the batch's
-- counts {inserted, updated, unchanged, conflicts} and its undo log, which
-- ferry.promote_batch() writes into ferry.undo: it runs as the tenant, who cannot write there.
-- The batch's plan rows are read once, for its counts and its updates; the rejects and the
-- inserts read them again only when the batch has some. A planned row that is not written
-- (a trigger skipped it; another writer changed or deleted it since the plan) fails the batch
-- (P0002): the loader splits it until the row stands alone and rejects it as
-- changed_during_load (ferry.reject_promotion_row).
create or replace function ferry.promote_function_sql(
  p_load    bigint,
  p_tag     text,
  p_tenant  ferry.tenants,
  p_map     ferry.mappings,
  p_pt      ferry.protected_tables,
  p_outputs text[]
) returns text
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_plan    text := ferry.quoted_object(p_tenant.schema_name, 'plan', p_load);
  v_target  text := format('%I.%I', p_map.target_schema, p_map.target_table);
  v_nonkeys text[] := array(select o from unnest(p_outputs) with ordinality as x(o, n)
                            where not o = any (p_map.key_columns) order by n);
begin
  return format($sql$create function %1$I.%2$I(
  p_lo bigint, p_hi bigint,
  out counts bigint[],
  -- the undo log of the batch, a row an element: ferry.promote_batch() writes it
  out undo_action text[], out undo_key jsonb[], out undo_before jsonb[], out undo_xid bigint[],
  out undo_rows text[]  -- action updates: the rows before, as the text of an array
)
language plpgsql security definer set search_path = public, pg_temp
as %3$s
declare
  v_counts   bigint[];
  v_inserted bigint;
  v_updated  bigint := 0;
  v_updates  %4$s[];
  v_settings text[];
  v_keys     jsonb[];
  v_befores  jsonb[];
  v_xids     bigint[];
  v_key      jsonb;
  v_xid      bigint;
  v_rows     text;
begin
  undo_action := '{}'; undo_key := '{}'; undo_before := '{}'; undo_xid := '{}'; undo_rows := '{}';
  select array[count(*) filter (where p._action = 'insert'),
               count(*) filter (where p._action = 'update'),
               count(*) filter (where p._action in ('unchanged', 'skip')),
               count(*) filter (where p._action = 'conflict')],
         %5$s
  into v_counts, v_updates
  from %4$s as p
  where p._line between p_lo and p_hi;

  if v_counts[4] > 0 then
    insert into %6$s (line, value, rule, message)
    select p._line, jsonb_build_object(%7$s)::text, 'conflict', 'the key already exists for this tenant (on_conflict: reject)'
    from %4$s as p
    where p._line between p_lo and p_hi and p._action = 'conflict';
  end if;

  -- Planned inserts, written without a join with the target. The undo log keeps their
  -- keys, one array a batch, and the id of the transaction that wrote them: a row changed
  -- later has another xmin, which is how rollback tells.
  if v_counts[1] > 0 then
    with written as (
      insert into %8$s as t (%9$I, %10$s)
      select %11$s, %12$s
      from %4$s as w
      where w._line between p_lo and p_hi and w._action = 'insert'
      returning %13$s as key, t.xmin::text::bigint as xid
    )
    select count(*), jsonb_agg(key), max(xid) into v_inserted, v_key, v_xid from written;
    if v_inserted > 0 then
      undo_action := undo_action || 'inserts'::text;
      undo_key := undo_key || v_key;
      undo_before := undo_before || null::jsonb;
      undo_xid := undo_xid || v_xid;
      undo_rows := undo_rows || null::text;
    end if;
  end if;

  -- Planned updates, by ctid; the undo log keeps each before-image.
%14$s
  if coalesce(v_inserted, 0) <> v_counts[1] then
    raise exception using errcode = 'P0002', message = (v_counts[1] - coalesce(v_inserted, 0)) || %15$L;
  end if;
  if v_updated <> v_counts[2] then
    raise exception using errcode = 'P0002', message = (v_counts[2] - v_updated) || %16$L;
  end if;
  counts := v_counts;
end
%3$s$sql$,
    p_tenant.schema_name, 'promote_' || p_load, p_tag,                                 -- 1 2 3
    v_plan,                                                                             -- 4
    case when cardinality(v_nonkeys) > 0                                                -- 5
         then $sql$array_agg(p) filter (where p._action = 'update')$sql$ else 'null' end,
    ferry.quoted_object(p_tenant.schema_name, 'rejects', p_load),                       -- 6
    (select string_agg(format('%L, p.%I', k, k), ', ') from unnest(p_map.key_columns) k),  -- 7
    v_target, p_pt.tenant_column,                                                       -- 8 9
    (select string_agg(quote_ident(o), ', ') from unnest(p_outputs) o),                 -- 10
    format('%L::%s', p_tenant.tenant_key, p_pt.tenant_type),                            -- 11
    (select string_agg(format('w.%I', o), ', ') from unnest(p_outputs) o),              -- 12
    ferry.written_key_sql(p_map.key_columns),                                           -- 13
    ferry.promote_updates_sql(p_tenant, p_map, p_pt, v_nonkeys),                        -- 14
    format(' row(s) planned for insert were not inserted into %s: skipped by a trigger', v_target),  -- 15
    format(' row(s) planned for update were not updated in %s: changed or deleted by another writer'
           ' during the load, or skipped by a trigger', v_target));                     -- 16
end
$$;

-- bulk_<load>(p_planned, p_returning): the load's inserts in one INSERT … SELECT, as the
-- tenant, where no row can conflict with the target, instead of a statement a batch:
--   * p_planned false, before any plan: when the tenant has no row in the target, every work
--     row is new; otherwise it inserts nothing and returns inserted NULL (the plan decides);
--   * p_planned true, after the plan: the plan's rows of action insert, whose keys were absent.
-- It returns the undo log of what it wrote: the keys of at most 10,000 rows an undo row, and
-- the writing transaction. With p_returning (the target has a trigger or rule that may change
-- a row on its way in) the keys are the rows' as stored, from RETURNING, a JSON array of keys
-- as a batch's; without, they are those the rows were inserted with, read again from the work
-- or plan table a column at a time ({"key": [values]}; ferry.undo_keys reads both): a
-- RETURNING of a million rows is kept on disk before it is read. A row that fails
-- (a constraint, a trigger error) fails the whole statement, and one skipped by a trigger makes
-- it raise P0002: the loader then rolls it back and promotes in batches under savepoints,
-- which isolate the bad rows.
create or replace function ferry.bulk_function_sql(
  p_load    bigint,
  p_tag     text,
  p_tenant  ferry.tenants,
  p_map     ferry.mappings,
  p_pt      ferry.protected_tables,
  p_outputs text[]
) returns text
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_target text := format('%I.%I', p_map.target_schema, p_map.target_table);
  v_tenant_value text := format('%L::%s', p_tenant.tenant_key, p_pt.tenant_type);
  v_columns text := format('%I, %s', p_pt.tenant_column, (select string_agg(quote_ident(o), ', ') from unnest(p_outputs) o));
  v_values  text := v_tenant_value || ', ' || (select string_agg(format('w.%I', o), ', ') from unnest(p_outputs) o);
  v_keys    text := (select string_agg(quote_ident(k), ', ') from unnest(p_map.key_columns) k);
  v_sources text[] := array[ferry.quoted_object(p_tenant.schema_name, 'work', p_load) || ' as w',
                            ferry.quoted_object(p_tenant.schema_name, 'plan', p_load)
                            || E' as w\n        where w._action = ''insert'''];
  v_inserts text[];
begin
  -- For each source (the work table, the plan's inserts): the INSERT and its undo log, with
  -- RETURNING (1) and without (2).
  v_inserts := array(
    select format($sql$    if p_returning then
      with written as (
        insert into %1$s as t (%2$s)
        select %3$s
        from %4$s
        returning %5$s as key, t.xmin::text::bigint as xid
      ),
      parts as (
        select jsonb_agg(key) as keys, max(xid) as xid, count(*) as n
        from (select key, xid, (row_number() over () - 1) / 10000 as part from written) as k
        group by part
      )
      select coalesce(sum(n), 0), coalesce(array_agg(keys), '{}'), coalesce(array_agg(xid), '{}')
      into inserted, undo_key, undo_xid
      from parts;
    else
      insert into %1$s as t (%2$s)
      select %3$s
      from %4$s;
      get diagnostics inserted = row_count;
      -- The keys a column at a time ({"key": [values]}), for the lines of each 10,000: one JSON
      -- object a key would cost more than the INSERT's last fifth.
      select coalesce(array_agg(p.keys), '{}') into undo_key
      from (
        select %6$s as keys
        from %4$s
        group by w._line / 10000
      ) as p;
      -- The transaction the rows were written by (the promotion's savepoint's): one row's xmin.
      select t.xmin::text::bigint into v_xid
      from %1$s as t
      where t.%7$I = %8$s and (%9$s) = (select %10$s from %4$s limit 1);
      undo_xid := array_fill(v_xid, array[cardinality(undo_key)]);
    end if;$sql$,
      v_target, v_columns, v_values, f.rows,                                              -- 1 2 3 4
      ferry.written_key_sql(p_map.key_columns),                                           -- 5
      format('jsonb_build_object(%s)', (select string_agg(format('%L, jsonb_agg(w.%I)', k, k), ', ') from unnest(p_map.key_columns) k)),  -- 6
      p_pt.tenant_column, v_tenant_value,                                                 -- 7 8
      (select string_agg(format('t.%I', k), ', ') from unnest(p_map.key_columns) k),      -- 9
      (select string_agg(format('w.%I', k), ', ') from unnest(p_map.key_columns) k))      -- 10
    from unnest(v_sources) with ordinality as f(rows, n)
    order by f.n);

  return format($sql$create function %1$I.%2$I(
  p_planned   boolean,
  p_returning boolean,
  out inserted bigint,
  out undo_key jsonb[],  -- a row of ferry.undo an element: its keys
  out undo_xid bigint[]
)
language plpgsql security definer set search_path = public, pg_temp
as %3$s
declare
  v_expected bigint;
  v_xid      bigint;
begin
  if not p_planned then
    if exists (select from %4$s as t where t.%5$I = %6$s) then
      return;
    end if;
    select count(*) into v_expected from %7$s;
%8$s
  else
    select count(*) into v_expected from %9$s as w where w._action = 'insert';
%10$s
  end if;
  if inserted <> v_expected then
    raise exception using errcode = 'P0002', message = (v_expected - inserted) || %11$L;
  end if;
end
%3$s$sql$,
    p_tenant.schema_name, 'bulk_' || p_load, p_tag,                                      -- 1 2 3
    v_target, p_pt.tenant_column, v_tenant_value,                                        -- 4 5 6
    ferry.quoted_object(p_tenant.schema_name, 'work', p_load),                           -- 7
    v_inserts[1],                                                                        -- 8
    ferry.quoted_object(p_tenant.schema_name, 'plan', p_load),                           -- 9
    v_inserts[2],                                                                        -- 10
    format(' row(s) to insert were not inserted into %s: skipped by a trigger', v_target));  -- 11
end
$$;

-- The SQL of a load's plan_<load>() and promote_<load>(lo, hi), for compile_load. p_outputs:
-- the columns the mapping writes, keys included, in the order of the work table's columns.
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
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select ferry.plan_function_sql(p_load, p_tag, p_tenant, p_map, p_pt, p_outputs),
         ferry.promote_function_sql(p_load, p_tag, p_tenant, p_map, p_pt, p_outputs)
$$;

-- Plans a load's promotion: runs its plan_<load>(), by key lookups when
-- ferry.prefers_key_lookups() says so, and returns the batches of p_batch_size plan rows.
-- The plan table is analyzed only for the columns promote_<load>() selects its batches by:
-- statistics of its before-images' JSON would take a large share of the plan's time.
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
  return query select * from ferry.promotion_batches(p_load, p_batch_size);
end
$$;

-- The batches of p_batch_size rows of the plan, in the order of their lines.
create or replace function ferry.promotion_batches(p_load bigint, p_batch_size integer)
returns table (lo bigint, hi bigint, rows bigint)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  return query execute format(
    'select min(_line), max(_line), count(*)
     from (select _line, (row_number() over (order by _line) - 1) / $1 as batch from %s) as b
     group by batch
     order by 1',
    ferry.quoted_object((ferry.load_tenant(p_load)).schema_name, 'plan', p_load))
  using p_batch_size;
end
$$;

-- Whether a row inserted into the table (or one of its partitions) may be stored other than
-- as given: a BEFORE or INSTEAD OF row trigger on INSERT, or a rule on INSERT. Then
-- bulk_<load>() takes the keys of its undo log from RETURNING.
create or replace function ferry.may_change_inserts(p_table regclass) returns boolean
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  with tables as (
    select p_table as relid
    union
    select p.relid from pg_partition_tree(p_table) as p
  )
  select exists (
           select from pg_trigger tg join tables on tables.relid = tg.tgrelid
           where not tg.tgisinternal
             and tg.tgtype::integer & 1 = 1          -- FOR EACH ROW
             and tg.tgtype::integer & 4 = 4          -- INSERT
             and tg.tgtype::integer & (2 | 64) <> 0  -- BEFORE or INSTEAD OF
         )
      or exists (
           select from pg_rewrite r join tables on tables.relid = r.ev_class
           where r.ev_type = '3'
         )
$$;

-- Promotes in one statement what cannot conflict (bulk_<load>(), see ferry.bulk_function_sql)
-- and writes its undo rows into ferry.undo, in the same statement. Returns the counts
-- {inserted, updated, unchanged, conflicts} of the rows it accounted for, or NULL when it
-- promoted nothing (the tenant has rows in the target and nothing is planned yet; a load
-- compiled before bulk_<load>() existed).
--   * p_planned false, first thing in the promotion (so it takes the target's lock): all the
--     work rows, when the tenant has no row in the target.
--   * p_planned true, after ferry.plan_promotion: the planned inserts, if there are any; they
--     are deleted from the plan, so that the batches (ferry.promotion_batches) are the rest.
create or replace function ferry.promote_in_bulk(p_load bigint, p_planned boolean) returns bigint[]
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant   ferry.tenants := ferry.load_tenant(p_load);
  v_plan     text := ferry.quoted_object(v_tenant.schema_name, 'plan', p_load);
  v_map      ferry.mappings;
  v_inserted bigint;
  v_none     boolean;
begin
  if to_regprocedure(format('%I.%I(boolean, boolean)', v_tenant.schema_name, 'bulk_' || p_load)) is null then
    return null;
  end if;
  select m.* into strict v_map from ferry.mappings m join ferry.loads l on l.mapping_id = m.id where l.id = p_load;
  if not p_planned then
    update ferry.loads set status = 'promoting' where id = p_load;
    perform ferry.lock_target(p_load);
  else
    -- Nothing planned for insert (a re-load, updates only): the batches do it all, as before.
    execute format('select not exists (select from %s where _action = %L)', v_plan, 'insert') into v_none;
    if v_none then
      return null;
    end if;
  end if;
  execute format(
    'with bulk as materialized (
       select * from %s($1, $5)
     ),
     undo as (
       insert into ferry.undo (load_id, target_schema, target_table, action, key, xid)
       select $2, $3, $4, %L, u.key, u.xid
       from bulk
       cross join unnest(bulk.undo_key, bulk.undo_xid) as u(key, xid)
     )
     select inserted from bulk',
    ferry.tenant_function(p_load, 'bulk', 'boolean, boolean')::oid::regproc, 'inserts')
  into v_inserted
  using p_planned, p_load, v_map.target_schema, v_map.target_table,
        ferry.may_change_inserts(format('%I.%I', v_map.target_schema, v_map.target_table)::regclass);
  if v_inserted is null then
    return null;
  end if;
  if p_planned then
    execute format('delete from %s where _action = %L', v_plan, 'insert');
  end if;
  return array[v_inserted, 0, 0, 0];
end
$$;

-- The work rows the plan left out, as nothing is to be written for them: unchanged, or kept by
-- on_conflict skip or newer:. Counted as unchanged. (A load planned before plan_<load>() left
-- them out has them all in its plan, and none here.)
create or replace function ferry.unwritten_rows(p_load bigint) returns bigint
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant ferry.tenants := ferry.load_tenant(p_load);
  v_rows   bigint;
begin
  execute format('select (select count(*) from %s) - (select count(*) from %s)',
                 ferry.quoted_object(v_tenant.schema_name, 'work', p_load),
                 ferry.quoted_object(v_tenant.schema_name, 'plan', p_load))
  into v_rows;
  return v_rows;
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

-- One batch: runs promote_<load>(lo, hi) and writes the undo log it returns into ferry.undo,
-- in the same statement. Returns {inserted, updated, unchanged, conflicts}. An undo row of
-- action 'updates' keeps the target's row type as it is now (row_type): what its before_rows
-- are read back as, even if the table changes later.
create or replace function ferry.promote_batch(p_load bigint, p_lo bigint, p_hi bigint) returns bigint[]
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_promote regprocedure := ferry.tenant_function(p_load, 'promote', 'bigint, bigint');
  v_map     ferry.mappings;
  v_counts  bigint[];
begin
  select m.* into strict v_map from ferry.mappings m join ferry.loads l on l.mapping_id = m.id where l.id = p_load;
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

-- Rejects a plan row that failed its batch (the loader found it by splitting). The rejected
-- value is the plan row less the plan's own columns (_line, _action, _before, _tid).
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

-- A load's undo log, an updated row a row: an 'updates' row (a batch's updates) comes out as
-- one 'update' row for each of its keys, its before_rows read back through a temporary type
-- of the columns they were written with (row_type). Other rows come out as they are, an
-- 'inserts' row's keys always as a JSON array of keys.
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
  select u.action,
         case when u.action = 'inserts' and jsonb_typeof(u.key) = 'object'
              then (select jsonb_agg(k) from ferry.undo_keys(u.key) as k) else u.key end,
         u.before, u.xid
  from ferry.undo u where u.load_id = p_load and u.action <> 'updates';
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

-- Ends a promotion, in its transaction: the promotion's rejects go to ferry.rejects, and the
-- load records its counts.
create or replace function ferry.finish_promotion(p_load bigint, p_inserted bigint, p_updated bigint, p_unchanged bigint)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  perform ferry.collect_rejects(p_load, 'promote');
  update ferry.loads
  set inserted = p_inserted, updated = p_updated, unchanged = p_unchanged
  where id = p_load;
end
$$;
