-- Compiling a load: the mapping's SELECT and the target's columns become four functions in
-- the tenant's schema, owned by the tenant role, SECURITY DEFINER, so that the mapping's own
-- SQL and the writes into the target run confined by row-level security:
--   transform_<load>()        staged text -> mapping -> checks -> typed, de-duplicated work table
--   plan_<load>()             work table joined to the target: insert, update or unchanged
--   promote_<load>(lo, hi)    one batch of the plan into the target, returning its undo rows
--   bulk_<load>(planned, returning) the rows that cannot conflict, in one INSERT, with their undo rows
-- ferry.compile_load() writes them (the transform here, the others in promotion.sql) and
-- keeps their text on the load.

-- The tenant's as_tenant(sql, describe): runs nothing, but opens a cursor on a query as the
-- tenant (which refuses several statements and checks the tenant's privileges) and, asked
-- to, describes its columns. Compiles of one tenant take turns here (a lock held until the
-- compiling transaction ends): two loads of a tenant compiling at once would both drop and
-- create this function.
create or replace function ferry.install_as_tenant(p_tenant ferry.tenants) returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  perform ferry.lock_row('as_tenant', p_tenant.schema_name);
  execute format('drop function if exists %I.as_tenant(text, boolean)', p_tenant.schema_name);
  execute format($f$
    create function %I.as_tenant(p_sql text, p_describe boolean)
    returns table (column_name name, type_oid oid, typmod integer)
    language plpgsql security definer set search_path = public, pg_temp
    as $body$
    declare
      v_cursor refcursor;
    begin
      open v_cursor for execute p_sql;
      close v_cursor;
      if p_describe then
        drop table if exists pg_temp.pgferry_describe;
        execute 'create temporary table pgferry_describe as ' || p_sql || ' with no data';
        return query
          select a.attname, a.atttypid, a.atttypmod
          from pg_catalog.pg_attribute a
          where a.attrelid = 'pg_temp.pgferry_describe'::regclass and a.attnum > 0 and not a.attisdropped
          order by a.attnum;
        drop table pg_temp.pgferry_describe;
      end if;
    end
    $body$
  $f$, p_tenant.schema_name);
  execute format('alter function %I.as_tenant(text, boolean) owner to %I', p_tenant.schema_name, p_tenant.role_name);
  perform ferry.restrict_to_loader(format('%I.as_tenant(text, boolean)', p_tenant.schema_name), p_tenant);
  -- Large objects the tenant's code made (PUBLIC may call lo_create and lo_from_bytea, and only
  -- a superuser could forbid it) are unlinked by this function, which runs as the tenant: only a
  -- large object's owner may unlink it. ferry.unlink_tenant_large_objects calls it.
  execute format($f$
    create or replace function %I.unlink_large_objects() returns bigint
    language sql security definer set search_path = pg_catalog, pg_temp
    as $body$
      select count(lo_unlink(m.oid)) from pg_largeobject_metadata m where m.lomowner = current_user::regrole
    $body$
  $f$, p_tenant.schema_name);
  execute format('alter function %I.unlink_large_objects() owner to %I', p_tenant.schema_name, p_tenant.role_name);
  perform ferry.restrict_to_loader(format('%I.unlink_large_objects()', p_tenant.schema_name), p_tenant);
end
$$;

-- Unlinks every large object the tenant's role owns: after each step that ran the tenant's
-- code, so that nothing its mapping made outlives the step. Nothing before the tenant's first
-- compile (which installs its unlink_large_objects()).
create or replace function ferry.unlink_tenant_large_objects(p_tenant ferry.tenants) returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_fn     regprocedure := to_regprocedure(format('%I.unlink_large_objects()', p_tenant.schema_name));
  v_count  bigint;
begin
  if v_fn is null or not exists (select from pg_largeobject_metadata m join pg_roles r on r.oid = m.lomowner
                                 where r.rolname = p_tenant.role_name) then
    return 0;
  end if;
  execute format('select %s()', v_fn::oid::regproc) into v_count;
  return v_count;
end
$$;

-- A tenant-owned function only the loader may call: not PUBLIC, not even the tenant (a mapping
-- calling its own compiled functions could promote outside the load's steps).
create or replace function ferry.restrict_to_loader(p_function text, p_tenant ferry.tenants) returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  execute format('revoke all on function %s from public, %I', p_function, p_tenant.role_name);
  if not (select rolsuper from pg_roles where rolname = current_user) then
    execute format('grant execute on function %s to %I', p_function, current_user);
  end if;
end
$$;

-- A compiled function of the load, checked before the loader calls it: still SECURITY DEFINER
-- and owned by the tenant, so that it runs as the tenant and never as the loader.
create or replace function ferry.tenant_function(p_load bigint, p_name text, p_args text) returns regprocedure
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

-- The mapping's SELECT around the staged rows: one output row per staged line, read as the
-- relation `staged`, so every output keeps its source line. A subquery, so a mapping may
-- start with its own WITH.
create or replace function ferry.mapping_query(p_stage text, p_select_sql text) returns text
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
  select format($sql$select st._line, m.*
from %1$s as st
cross join lateral (
  with staged as (select st.*)
  select * from (
%2$s
  ) as mapping
) as m$sql$, p_stage, p_select_sql)
$$;

-- What the mapping outputs, against the target's columns: each output's cast to its target
-- type and the checks of step 3 of the transform (type, NOT NULL, key), or the errors that
-- make the mapping unusable, all of them at once. A typed column is probed whole first (a
-- set-based cast, `v_casts_N`): if every value casts, no value of it needs input_error().
create or replace function ferry.output_columns(
  p_mapped      text,
  p_map         ferry.mappings,
  p_pt          ferry.protected_tables,
  out outputs     text[],  -- the mapping's output columns, in order
  out work_cols   text[],  -- "name type" of the work table
  out casts       text[],  -- each output as its target type
  out fast_casts  text[],  -- each output as the optimistic pass writes it; NULL if a column is checked value by value
  out probes      text[],  -- statements setting v_casts_N
  out suspects    text[],  -- conditions under which a row may fail a check
  out check_cols  text[],  -- value_N, rule_N, message_N of each checked column
  out validations text[],  -- (column, value_N, rule_N, message_N) of each checked column
  out errors      text[]
)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_target      text := format('%I.%I', p_map.target_schema, p_map.target_table);
  v_keys        text[] := p_map.key_columns;
  -- Why a value is not of its type: asked softly on PostgreSQL 16+ (see validation.sql).
  v_input_error text := case when current_setting('server_version_num')::integer >= 160000
                             then 'ferry_util.soft_input_error' else 'ferry_util.input_error' end;
  v_out         record;
  v_presence    text;
  v_cast        text;
  v_type_check  text;
  v_n           integer;
begin
  outputs := '{}'; work_cols := '{}'; casts := '{}'; fast_casts := '{}'; probes := '{}'; suspects := '{}';
  check_cols := '{}'; validations := '{}'; errors := '{}';
  for v_out in
    select a.attname::text as name,
           t.attname is not null as in_target,
           format_type(t.atttypid, t.atttypmod) as target_type,
           t.atttypid = a.atttypid and t.atttypmod = -1 as same_type,
           ty.typcategory = 'S' as texty,
           coalesce(t.attnotnull, false) as not_null,
           coalesce(t.attgenerated <> '' or t.attidentity = 'a', false) as generated,
           a.attname::text = any (v_keys) as is_key
    from pg_attribute a
    left join pg_attribute t
      on t.attrelid = v_target::regclass and t.attname = a.attname and t.attnum > 0 and not t.attisdropped
    left join pg_type ty on ty.oid = t.atttypid
    where a.attrelid = p_mapped::regclass and a.attnum > 0 and not a.attisdropped and a.attname <> '_line'
    order by a.attnum
  loop
    outputs := outputs || v_out.name;
    if v_out.name = p_pt.tenant_column then
      errors := errors || format('the mapping outputs the tenant column %I: pgferry sets it itself', v_out.name);
      continue;
    elsif not v_out.in_target then
      errors := errors || format('the target %s has no column %I (name each output column with AS)', v_target, v_out.name);
      continue;
    elsif v_out.generated then
      errors := errors || format('column %I of %s is generated and cannot be loaded', v_out.name, v_target);
      continue;
    end if;

    -- Empty text counts as missing, except for text targets where '' is a value.
    v_presence := case when v_out.texty and not v_out.is_key
                       then format('m.%I is null', v_out.name)
                       else format('nullif(m.%I::text, %L) is null', v_out.name, '') end;
    v_cast := case
      when v_out.same_type then format('m.%I', v_out.name)
      when v_out.texty and not v_out.is_key then format('m.%I::text::%s', v_out.name, v_out.target_type)
      else format('nullif(m.%I::text, %L)::%s', v_out.name, '', v_out.target_type) end;
    if v_out.same_type then
      v_type_check := 'null';
    elsif v_out.target_type ~ '^(character|bit)' and v_out.target_type !~ '^character( varying)?(\([0-9]+\))?$' then
      -- bit strings, arrays of character strings: an explicit cast cuts them to length
      -- (storing would not), so a probe would prove nothing. Value by value.
      v_type_check := format('%s(m.%I::text, %L)', v_input_error, v_out.name, v_out.target_type);
      suspects := suspects || 'true'::text;
    else
      v_n := cardinality(probes) + 1;
      probes := probes || case
        -- character(n), character varying(n): the explicit cast cuts, so compare lengths.
        when v_out.target_type ~ '^character.*\(' then format(
          $sql$  perform from %1$s as m where char_length(m.%2$I::text) > %3$s limit 1;
  v_casts_%4$s := not found;$sql$,
          p_mapped, v_out.name, substring(v_out.target_type from '\(([0-9]+)\)'), v_n)
        else format(
          $sql$  begin
    perform count(%1$s) from %2$s as m;
    v_casts_%3$s := true;
  exception when data_exception then
    v_casts_%3$s := false;
  end;$sql$,
          v_cast, p_mapped, v_n) end;
      v_type_check := format('case when v_casts_%s then null else %s(m.%I::text, %L) end',
                             v_n, v_input_error, v_out.name, v_out.target_type);
      suspects := suspects || format('not v_casts_%s', v_n);
    end if;
    if v_out.is_key or v_out.not_null then
      suspects := suspects || v_presence;
    end if;
    if v_out.is_key or v_out.not_null or not v_out.same_type then
      -- The checks are columns of a subquery, and VALUES only lists them: expressions inside
      -- a LATERAL VALUES are set up anew for every row, losing their caches.
      v_n := cardinality(check_cols) + 1;
      check_cols := check_cols || format(
        $sql$m.%1$I::text as value_%2$s,
           case when %3$s then %4$L else 'type' end as rule_%2$s,
           case when %3$s then %5$s else %6$s end as message_%2$s$sql$,
        v_out.name, v_n, v_presence,
        case when v_out.is_key then 'missing_key' else 'not_null' end,
        case when v_out.is_key then quote_literal(format('key column %s is empty', v_out.name))
             when v_out.not_null then quote_literal(format('column %s must not be empty', v_out.name))
             else 'null' end,
        v_type_check);
      validations := validations || format('(%1$L, c.value_%2$s, c.rule_%2$s, c.message_%2$s)', v_out.name, v_n);
    end if;

    work_cols := work_cols || format('%I %s', v_out.name, v_out.target_type);
    casts := casts || v_cast;
    -- The optimistic pass stores character(n) and character varying(n) without an explicit
    -- cast, which would cut them: storing checks their length. Bit strings and arrays of
    -- character strings are checked value by value: no optimistic pass.
    fast_casts := fast_casts || case
      when v_type_check <> 'null' and v_out.target_type ~ '^(character|bit)'
           and v_out.target_type !~ '^character( varying)?(\([0-9]+\))?$' then null
      when not v_out.same_type and v_out.target_type ~ '^character.*\(' then
        case when v_out.texty and not v_out.is_key then format('m.%I::text', v_out.name)
             else format('nullif(m.%I::text, %L)', v_out.name, '') end
      else v_cast end;
  end loop;
  if array_position(fast_casts, null) is not null then
    fast_casts := null;
  end if;

  errors := errors || array(
    select format('the key column %I is not an output of the mapping', k)
    from unnest(v_keys) k where not k = any (outputs));
  if p_map.on_conflict like 'newer:%' and not substr(p_map.on_conflict, 7) = any (outputs) then
    errors := errors || format('on_conflict newer:%s names a column the mapping does not output',
                               substr(p_map.on_conflict, 7));
  end if;
  errors := errors || array(
    select format('column %I of %s is NOT NULL without a default: the mapping must output it', t.attname, v_target)
    from pg_attribute t
    where t.attrelid = v_target::regclass and t.attnum > 0 and not t.attisdropped
      and t.attnotnull and not t.atthasdef and t.attidentity = '' and t.attgenerated = ''
      and t.attname <> p_pt.tenant_column
      and not t.attname = any (outputs)
    order by t.attnum);
end
$$;

-- Step 3 of the transform: the typed columns' probes, then every column's checks in one pass
-- over the mapped rows, only over rows where some check can fail.
create or replace function ferry.column_checks_sql(
  p_mapped      text,
  p_rejects     text,
  p_probes      text[],
  p_check_cols  text[],
  p_suspects    text[],
  p_validations text[]
) returns text
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
  select case when cardinality(p_validations) > 0 then
    case when cardinality(p_probes) > 0 then array_to_string(p_probes, E'\n') || E'\n' else '' end
    || format($sql$  insert into %1$s (line, column_name, value, rule, message)
  select c._line, v.column_name, v.value, v.rule, v.message
  from (
    select m._line,
           %2$s
    from %3$s as m
    -- only rows where some check can fail: with every probe passed, a few null tests
    where %4$s
    offset 0 -- kept a subquery: its columns are computed once per row
  ) as c
  cross join lateral (values
    %5$s
  ) as v (column_name, value, rule, message)
  where v.message is not null;$sql$,
      p_rejects,
      array_to_string(p_check_cols, E',\n           '),
      p_mapped,
      array_to_string(p_suspects, E'\n       or '),
      array_to_string(p_validations, E',\n    '))
  else '' end
$$;

-- Step 5 of the transform: the mapping's declared checks, on typed values. Each is tried now,
-- as the tenant, so that a bad one fails before data moves.
create or replace function ferry.declared_checks_sql(p_tenant ferry.tenants, p_checks jsonb, p_work text, p_rejects text)
returns text
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_check jsonb;
  v_sql   text := '';
begin
  for v_check in select * from jsonb_array_elements(p_checks) loop
    execute format('select count(*) from %I.as_tenant($1, false)', p_tenant.schema_name)
    using format('select from %s as w where not coalesce((%s), true)', p_work, v_check->>'expression');
    v_sql := v_sql || format($sql$  insert into %1$s (line, value, rule, message)
  select w._line, (to_jsonb(w) - '_line')::text, 'check', %2$L
  from %3$s as w
  where not coalesce((%4$s), true);
$sql$, p_rejects, v_check->>'message', p_work, v_check->>'expression');
  end loop;
  if v_sql <> '' then
    v_sql := v_sql || format($sql$  delete from %1$s as w using %2$s as r where r.line = w._line and r.rule = 'check';
$sql$, p_work, p_rejects);
  end if;
  return v_sql;
end
$$;

-- Step 6 of the transform: references to protected tables, checked as the tenant.
-- PostgreSQL's own check ignores row-level security, so it would accept a reference to
-- another tenant's row. Missing and foreign rows get the same reject, which tells nothing
-- about other tenants. A key with a column the mapping does not set is left to the
-- constraint itself.
create or replace function ferry.foreign_key_checks_sql(
  p_map     ferry.mappings,
  p_pt      ferry.protected_tables,
  p_tenant  ferry.tenants,
  p_outputs text[],
  p_work    text,
  p_rejects text
) returns text
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant_value text := format('%L::%s', p_tenant.tenant_key, p_pt.tenant_type);
  v_fk           record;
  v_sql          text := '';
begin
  for v_fk in
    select c.conname, format('%I.%I', n.nspname, r.relname) as ref_table,
           array(select a.attname::text from unnest(c.conkey) with ordinality k(n, o)
                 join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.n order by k.o) as cols,
           array(select a.attname::text from unnest(c.confkey) with ordinality k(n, o)
                 join pg_attribute a on a.attrelid = c.confrelid and a.attnum = k.n order by k.o) as ref_cols
    from pg_constraint c
    join pg_class r on r.oid = c.confrelid
    join pg_namespace n on n.oid = r.relnamespace
    join ferry.protected_tables p on p.schema_name = n.nspname and p.table_name = r.relname
    where c.conrelid = format('%I.%I', p_map.target_schema, p_map.target_table)::regclass and c.contype = 'f'
    order by c.conname
  loop
    continue when exists (
      select from unnest(v_fk.cols) c where c <> p_pt.tenant_column and not c = any (p_outputs));
    v_sql := v_sql || format($sql$  insert into %1$s (line, column_name, value, rule, message)
  select w._line, %2$L, %3$s, 'foreign_key', %4$L
  from %5$s as w
  where %6$s
    and not exists (select from %7$s as r where %8$s);
$sql$,
      p_rejects,
      array_to_string(array(select c from unnest(v_fk.cols) c where c <> p_pt.tenant_column), ', '),
      (select string_agg(format('w.%I::text', c), ' || '','' || ') from unnest(v_fk.cols) c where c <> p_pt.tenant_column),
      format('no row of %s with that %s for this tenant (%s)', v_fk.ref_table,
             array_to_string(v_fk.ref_cols, ', '), v_fk.conname),
      p_work,
      (select string_agg(format('w.%I is not null', c), ' and ') from unnest(v_fk.cols) c where c <> p_pt.tenant_column),
      v_fk.ref_table,
      (select string_agg(case when c = p_pt.tenant_column then format('r.%I = %s', rc, v_tenant_value)
                              else format('r.%I = w.%I', rc, c) end, ' and ' order by o)
       from unnest(v_fk.cols, v_fk.ref_cols) with ordinality as k(c, rc, o)));
  end loop;
  if v_sql <> '' then
    v_sql := v_sql || format($sql$  delete from %1$s as w using %2$s as r where r.line = w._line and r.rule = 'foreign_key';
$sql$, p_work, p_rejects);
  end if;
  return v_sql;
end
$$;

-- Step 7 of the transform: duplicate keys within the load. With `duplicates: last` or `first`,
-- the lines of a key but the one that wins are superseded: they go to the load's duplicates
-- table as one row per key (its kept line, the superseded lines as an array, a row per
-- million of them), never a wide reject row each: a flood of identical lines must not flood
-- the catalog. With `duplicates: reject` every line of the key becomes a `duplicate_key`
-- reject, to be fixed like any other.
create or replace function ferry.duplicates_sql(p_map ferry.mappings, p_work text, p_rejects text, p_dups text)
returns text
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
  select case when p_map.duplicates = 'reject' then format($sql$  with dup as (
    select %1$s, count(*) as n
    from %2$s
    group by %1$s
    having count(*) > 1
  )
  insert into %3$s (line, value, rule, message)
  select w._line, jsonb_build_object(%4$s)::text, 'duplicate_key', format('key appears on %%s lines (duplicates: reject)', d.n)
  from %2$s as w
  join dup as d on %5$s;
  delete from %2$s as w using %3$s as r where r.line = w._line and r.rule = 'duplicate_key';
$sql$,
    (select string_agg(quote_ident(k), ', ') from unnest(p_map.key_columns) k),
    p_work,
    p_rejects,
    (select string_agg(format('%L, w.%I', k, k), ', ') from unnest(p_map.key_columns) k),
    (select string_agg(format('w.%I = d.%I', k, k), ' and ') from unnest(p_map.key_columns) k))
  else format($sql$  with dup as (
    select jsonb_build_object(%1$s) as key, %2$s, %6$s(_line) as kept_line
    from %3$s
    group by %2$s
    having count(*) > 1
  ),
  superseded as (
    select d.key, d.kept_line, w._line,
           (row_number() over (partition by d.kept_line order by w._line) - 1) / 1000000 as part
    from %3$s as w
    join dup as d on %5$s
    where w._line <> d.kept_line
  )
  insert into %4$s (key, kept_line, lines)
  select key, kept_line, array_agg(_line order by _line)
  from superseded
  group by key, kept_line, part;
  delete from %3$s as w using (select unnest(lines) as line from %4$s) as d where d.line = w._line;
$sql$,
    (select string_agg(format('%L, %I', k, k), ', ') from unnest(p_map.key_columns) k),
    (select string_agg(quote_ident(k), ', ') from unnest(p_map.key_columns) k),
    p_work,
    p_dups,
    (select string_agg(format('w.%I = d.%I', k, k), ' and ') from unnest(p_map.key_columns) k),
    case p_map.duplicates when 'first' then 'min' else 'max' end)
  end
$$;

-- Steps 1 to 4 of the transform, optimistically: the mapping, the casts to the target's types
-- and how many rows the mapping returned for each line, in one pass from the staging table
-- straight into the work table (no mapped table, no probes), then the key and NOT NULL checks
-- on the typed rows. Anything that would be a reject of steps 1 to 3 but a missing value
-- fails the pass with a data error: a value of the wrong type (its cast fails), a line the
-- mapping multiplied (its count, as text, cast to integer) or dropped (fewer rows than
-- staged). The pass is then undone (its savepoint) and steps 1 to 4 find each problem, value
-- by value where they must. Empty when some column is checked value by value anyway
-- (p_fast_casts NULL, see ferry.output_columns).
create or replace function ferry.optimistic_transform_sql(
  p_load       bigint,
  p_tenant     ferry.tenants,
  p_map        ferry.mappings,
  p_outputs    text[],
  p_fast_casts text[],
  p_checks     text,    -- step 3 on the work table, from ferry.column_checks_sql() without probes
  p_probes     integer  -- how many v_casts_N step 3 sets
) returns text
language plpgsql immutable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_stage   text := ferry.quoted_object(p_tenant.schema_name, 'stage', p_load);
  v_work    text := ferry.quoted_object(p_tenant.schema_name, 'work', p_load);
  -- The column of the mapping's row count for a line: a name none of its outputs has.
  v_rows    text := '_pgferry_rows';
begin
  if p_fast_casts is null then
    return '';
  end if;
  while v_rows = any (p_outputs) loop
    v_rows := v_rows || '_';
  end loop;
  return format($sql$  -- 1 to 4, optimistically, in one pass (see ferry.optimistic_transform_sql)
  begin
    insert into %1$s (_line, %2$s)
    select st._line, %3$s
    from %4$s as st
    cross join lateral (
      select mapping.*, count(*) over () as %5$I
      from (
        with staged as (select st.*)
        select * from (
%6$s
        ) as mapping
      ) as mapping
    ) as m
    where case when m.%5$I = 1 then true
               else ('the mapping returned ' || m.%5$I || ' rows for a line')::integer is null end;
    get diagnostics v_rows = row_count;
    if v_rows <> (select count(*) from %4$s) then
      raise exception 'the mapping returned no row for some line' using errcode = 'data_exception';
    end if;
%7$s%8$s
    if exists (select from %9$s) then
      delete from %1$s as w using %9$s as r where r.line = w._line;
    end if;
    v_optimistic := true;
  exception when data_exception then
    v_optimistic := false;
  end;

$sql$,
    v_work,                                                                              -- 1
    (select string_agg(quote_ident(o), ', ') from unnest(p_outputs) o),                  -- 2
    array_to_string(p_fast_casts, E',\n           '),                                   -- 3
    v_stage, v_rows, p_map.select_sql,                                                   -- 4 5 6
    (select string_agg(format(E'    v_casts_%s := true;\n', n), '') from generate_series(1, p_probes) n),  -- 7
    p_checks,                                                                            -- 8
    ferry.quoted_object(p_tenant.schema_name, 'rejects', p_load));                       -- 9
end
$$;

-- transform_<load>(): first steps 1 to 4 in one optimistic pass (ferry.optimistic_transform_sql);
-- where it fails, the mapping into the mapped table, then rejects for what fails, then the
-- typed work table of the lines that passed. Then declared checks, references and duplicate
-- keys. Every step is set-based; only a mapping that fails on some value runs line by line,
-- each line under its own savepoint.
create or replace function ferry.transform_function_sql(
  p_load    bigint,
  p_tag     text,
  p_tenant  ferry.tenants,
  p_map     ferry.mappings,
  p_pt      ferry.protected_tables,
  p_outputs text[],
  p_casts   text[],
  p_checks  text,    -- step 3, from ferry.column_checks_sql()
  p_probes  integer, -- how many v_casts_N step 3 sets
  p_optimistic text  -- steps 1 to 4 in one pass, from ferry.optimistic_transform_sql()
) returns text
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_s       name := p_tenant.schema_name;
  v_stage   text := ferry.quoted_object(v_s, 'stage', p_load);
  v_mapped  text := ferry.quoted_object(v_s, 'mapped', p_load);
  v_work    text := ferry.quoted_object(v_s, 'work', p_load);
  v_rejects text := ferry.quoted_object(v_s, 'rejects', p_load);
begin
  return format($sql$create function %1$I.%2$I() returns void
language plpgsql security definer set search_path = public, pg_temp
as %3$s
declare
  v_line bigint;
  v_rows bigint;
  v_optimistic boolean := false;
%4$sbegin
%16$s  if not v_optimistic then
  -- 1. the mapping, one output row per staged line
  begin
    insert into %5$s
%6$s;
  exception when data_exception then
    -- A value made the mapping itself fail (a cast, a division): run it line by line,
    -- each under its own savepoint, and reject the lines that fail.
    for v_line in select _line from %7$s order by _line loop
      begin
        insert into %5$s
%6$s
        where st._line = v_line;
      exception when data_exception then
        insert into %8$s (line, rule, message) values (v_line, 'mapping_error', sqlerrm);
      end;
    end loop;
  end;

  -- 2. lines the mapping dropped or multiplied
  insert into %8$s (line, rule, message)
  select st._line, 'filtered', 'the mapping returned no row for this line'
  from %7$s as st
  where not exists (select from %5$s as m where m._line = st._line)
    and not exists (select from %8$s as r where r.line = st._line);
  insert into %8$s (line, rule, message)
  select _line, 'fanout', format('the mapping returned %%s rows for this line', count(*))
  from %5$s
  group by _line
  having count(*) > 1;

  -- 3. each output value against the target column's type, NOT NULL and key
%9$s

  -- 4. typed work table of the lines that passed
  insert into %10$s (_line, %11$s)
  select m._line, %12$s
  from %5$s as m
  where not exists (select from %8$s as r where r.line = m._line);
  end if;

  -- 5. declared checks
%13$s
  -- 6. references to protected tables, as this tenant sees them
%14$s
  -- 7. duplicate keys within the load
%15$send
%3$s$sql$,
    v_s, 'transform_' || p_load, p_tag,
    (select string_agg(format(E'  v_casts_%s boolean;\n', n), '') from generate_series(1, p_probes) n),
    v_mapped,
    ferry.mapping_query(v_stage, p_map.select_sql),
    v_stage,
    v_rejects,
    p_checks,
    v_work,
    (select string_agg(quote_ident(o), ', ') from unnest(p_outputs) o),
    array_to_string(p_casts, E',\n         '),
    ferry.declared_checks_sql(p_tenant, p_map.checks, v_work, v_rejects),
    ferry.foreign_key_checks_sql(p_map, p_pt, p_tenant, p_outputs, v_work, v_rejects),
    ferry.duplicates_sql(p_map, v_work, v_rejects, ferry.quoted_object(v_s, 'duplicates', p_load)),
    p_optimistic);
end
$$;

-- Compiles load p_load: checks the mapping against the target (all problems at once), makes
-- the load's unlogged tables (owned by the loader, which writes them: a tenant owning them
-- could hang a trigger on them), then creates its functions, hands them to the tenant and
-- returns their text.
create or replace function ferry.compile_load(p_load bigint) returns text
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_load    ferry.loads;
  v_tenant  ferry.tenants;
  v_map     ferry.mappings;
  v_pt      ferry.protected_tables;
  v_s       name;
  v_mapped  text;
  v_work    text;
  v_plan    text;
  v_rejects text;
  v_dups    text;
  v_mapped_cols text;
  v_columns record;
  v_sql     text[];
  -- Quotes the compiled bodies; unguessable (random() can be seeded by a mapping).
  v_tag     text := '$pgferry_' || replace(gen_random_uuid()::text, '-', '') || '$';
  v_fn      record;
  v_compiled text;
begin
  select * into strict v_load from ferry.loads where id = p_load;
  select * into strict v_tenant from ferry.tenants where id = v_load.tenant_id;
  select * into strict v_map from ferry.mappings where id = v_load.mapping_id;
  select * into v_pt from ferry.protected_tables
  where schema_name = v_map.target_schema and table_name = v_map.target_table;
  if not found then
    raise exception 'target table %.% is not protected', v_map.target_schema, v_map.target_table
      using errcode = '55000',
            hint = format('run: pgferry tenant protect %s.%s', v_map.target_schema, v_map.target_table);
  end if;
  if position(v_tag in v_map.select_sql) > 0 or position(v_tag in v_map.checks::text) > 0 then
    raise exception 'the mapping contains the text %', v_tag using errcode = '42601';
  end if;
  v_s := v_tenant.schema_name;
  v_mapped := ferry.quoted_object(v_s, 'mapped', p_load);
  v_work := ferry.quoted_object(v_s, 'work', p_load);
  v_plan := ferry.quoted_object(v_s, 'plan', p_load);
  v_rejects := ferry.quoted_object(v_s, 'rejects', p_load);
  v_dups := ferry.quoted_object(v_s, 'duplicates', p_load);

  -- The mapping's SQL is only ever planned or run as the tenant, inside its SECURITY DEFINER
  -- as_tenant(). First it must be exactly one query the tenant may run; only then is SQL
  -- built around it executed, and spliced into the compiled functions.
  perform ferry.install_as_tenant(v_tenant);
  -- The row of the target's lock, committed with the compile: try_lock_target, which must not
  -- wait, would wait for a promotion that inserted it and has not committed yet.
  perform ferry.make_lock_row('target', ferry.target_lock_subject(p_load));
  execute format('drop table if exists %s', v_mapped);
  execute format('select string_agg(format(%L, column_name, format_type(type_oid, typmod)), %L) from %I.as_tenant($1, true)',
                 '%I %s', E',\n  ', v_s)
  into v_mapped_cols
  using ferry.mapping_query(ferry.quoted_object(v_s, 'stage', p_load), v_map.select_sql);
  execute format(E'create unlogged table %s (\n  %s\n)', v_mapped, v_mapped_cols);
  execute format('grant select, insert on %s to %I', v_mapped, v_tenant.role_name);

  select * into v_columns from ferry.output_columns(v_mapped, v_map, v_pt);
  if cardinality(v_columns.errors) > 0 then
    raise exception '%', array_to_string(v_columns.errors, E'\n')
      using errcode = '42P17', detail = 'mapping ' || v_map.name || ' version ' || v_map.version;
  end if;

  execute format('drop table if exists %s, %s, %s, %s', v_work, v_rejects, v_plan, v_dups);
  execute format(E'create unlogged table %s (\n  _line bigint not null,\n  %s\n)',
                 v_work, array_to_string(v_columns.work_cols, E',\n  '));
  execute format('create unlogged table %s (line bigint, column_name text, value text, rule text not null, message text not null)', v_rejects);
  execute format('create unlogged table %s (key jsonb not null, kept_line bigint not null, lines bigint[] not null)', v_dups);
  execute format('create unlogged table %s as select w.*, null::text as _action, null::jsonb as _before, null::tid as _tid from %s as w with no data',
                 v_plan, v_work);
  execute format('create index on %s (_line)', v_plan);
  execute format('grant select, insert, delete on %s to %I', v_work, v_tenant.role_name);
  execute format('grant select, insert on %s to %I', v_rejects, v_tenant.role_name);
  execute format('grant select, insert on %s to %I', v_dups, v_tenant.role_name);
  execute format('grant select, insert on %s to %I', v_plan, v_tenant.role_name);

  select array[
           ferry.transform_function_sql(
             p_load, v_tag, v_tenant, v_map, v_pt, v_columns.outputs, v_columns.casts,
             ferry.column_checks_sql(v_mapped, v_rejects, v_columns.probes, v_columns.check_cols,
                                     v_columns.suspects, v_columns.validations),
             cardinality(v_columns.probes),
             ferry.optimistic_transform_sql(
               p_load, v_tenant, v_map, v_columns.outputs, v_columns.fast_casts,
               ferry.column_checks_sql(v_work, v_rejects, '{}', v_columns.check_cols,
                                       v_columns.suspects, v_columns.validations),
               cardinality(v_columns.probes))),
           f.plan_sql,
           f.promote_sql,
           ferry.bulk_function_sql(p_load, v_tag, v_tenant, v_map, v_pt, v_columns.outputs)]
  into strict v_sql
  from ferry.promotion_functions_sql(p_load, v_tag, v_tenant, v_map, v_pt, v_columns.outputs) as f;

  -- Created by the loader (nothing of them runs now), then given to the tenant: as SECURITY
  -- DEFINER functions they run as the tenant, where PostgreSQL refuses any change of role.
  for v_fn in
    select format('%I.%I(%s)', v_s, f.name || '_' || p_load, f.args) as signature, f.sql
    from unnest(array['transform', 'plan', 'promote', 'bulk'], array['', '', 'bigint, bigint', 'boolean, boolean'], v_sql)
      as f(name, args, sql)
  loop
    execute format('drop function if exists %s', v_fn.signature);
    execute v_fn.sql;
    execute format('alter function %s owner to %I', v_fn.signature, v_tenant.role_name);
    perform ferry.restrict_to_loader(v_fn.signature, v_tenant);
  end loop;

  v_compiled := array_to_string(v_sql, E';\n\n') || E';\n';
  update ferry.loads set compiled_sql = v_compiled where id = p_load;
  update ferry.mappings set compiled_sql = v_compiled where id = v_map.id;
  return v_compiled;
end
$$;
