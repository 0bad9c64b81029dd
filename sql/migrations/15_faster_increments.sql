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
create function ferry.has_key_index(p_target regclass, p_keys text[], p_tenant_column name) returns boolean
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
create function ferry.prefers_key_lookups(p_load bigint) returns boolean
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
create function ferry.plan_by_key_lookups(p_plan regprocedure) returns void
language plpgsql
set search_path = pg_catalog, pg_temp
set pgferry.plan_by_key = 'on'
as $$
begin
  execute format('select %s()', p_plan::oid::regproc);
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

-- transform: as in 9_resume.sql, with the work table analyzed for its line and key columns,
-- what later joins on it use (the plan's join to the target; mirror's search for absent rows).
create or replace function ferry.transform(p_load bigint) returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant ferry.tenants := ferry.load_tenant(p_load);
  v_work   text := ferry.quoted_object(v_tenant.schema_name, 'work', p_load);
  v_keys   text[];
  v_rows   bigint;
begin
  select m.key_columns into strict v_keys from ferry.mappings m join ferry.loads l on l.mapping_id = m.id where l.id = p_load;
  update ferry.loads set status = 'transforming' where id = p_load;
  execute format('truncate %s, %s, %s',
                 ferry.quoted_object(v_tenant.schema_name, 'mapped', p_load),
                 v_work,
                 ferry.quoted_object(v_tenant.schema_name, 'rejects', p_load));
  delete from ferry.rejects where load_id = p_load and step = 'transform';
  execute format('select %s()', ferry.tenant_function(p_load, 'transform', '')::oid::regproc);
  execute format('analyze %s (%s)', v_work,
                 (select string_agg(quote_ident(c), ', ') from unnest('_line'::text || v_keys) as c));
  perform ferry.collect_rejects(p_load, 'transform');
  execute format('select count(*) from %s', v_work) into v_rows;
  return v_rows;
end
$$;

-- compile_load: as in 6_faster_checks_and_promotion.sql, but for the plan table's _tid and how
-- a batch's planned updates are written (v_update_sql). The rest is unchanged.
create or replace function ferry.compile_load(p_load bigint) returns text
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_load     ferry.loads;
  v_tenant   ferry.tenants;
  v_map      ferry.mappings;
  v_pt       ferry.protected_tables;
  v_s        name;
  v_stage    text;
  v_mapped   text;
  v_work     text;
  v_rejects  text;
  v_undo     text;
  v_plan     text;
  v_target   text;
  v_target_oid oid;
  v_tenant_value text;
  v_query    text;
  v_errors   text[] := '{}';
  v_out      record;
  v_outputs  text[] := '{}';
  v_keys     text[];
  v_nonkeys  text[] := '{}';
  v_newer    text;
  v_col      text;
  v_check    jsonb;
  -- Quotes the compiled bodies; unguessable (random() can be seeded by a mapping).
  v_tag      text := '$pgferry_' || replace(gen_random_uuid()::text, '-', '') || '$';
  v_fk       record;
  v_fk_sql   text := '';
  v_fk_match text;
  v_fk_ok    boolean;
  v_mapped_cols text;
  v_checked  bigint;
  v_work_cols   text[] := '{}';
  v_casts       text[] := '{}';
  v_validations text[] := '{}';
  v_column_checks text := '';
  v_presence    text;
  v_type_check  text;
  v_probes      text[] := '{}';
  v_probe_vars  text := '';
  v_suspects    text[] := '{}';
  v_check_cols  text[] := '{}';
  v_cast        text;
  v_checks_sql  text := '';
  v_dup_sql     text;
  v_key_match   text;
  v_transform   text;
  v_plan_fn     text;
  v_promote     text;
  v_action      text;
  v_update_sql text;
  v_written_key text;
  -- Settings of a batch's UPDATE: rows found by ctid, and no JIT for the cost of the others.
  v_by_ctid_settings text[] := '{enable_seqscan,enable_indexscan,enable_bitmapscan,enable_tidscan,jit}';
  v_by_ctid_values   text[] := '{off,off,off,on,off}';
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

  v_s := v_tenant.schema_name;
  v_stage := ferry.quoted_object(v_s, 'stage', p_load);
  v_mapped := ferry.quoted_object(v_s, 'mapped', p_load);
  v_work := ferry.quoted_object(v_s, 'work', p_load);
  v_rejects := ferry.quoted_object(v_s, 'rejects', p_load);
  v_undo := ferry.quoted_object(v_s, 'undo', p_load);
  v_plan := ferry.quoted_object(v_s, 'plan', p_load);
  v_target := format('%I.%I', v_map.target_schema, v_map.target_table);
  v_target_oid := v_target::regclass;
  v_tenant_value := format('%L::%s', v_tenant.tenant_key, v_pt.tenant_type);
  if position(v_tag in v_map.select_sql) > 0 or position(v_tag in v_map.checks::text) > 0 then
    raise exception 'the mapping contains the text %', v_tag using errcode = '42601';
  end if;

  -- One output row per staged line: the mapping reads `staged` as that one row, so every
  -- output keeps its source line. A subquery, so a mapping may start with its own WITH.
  v_query := format(
    E'select st._line, m.*\nfrom %s as st\ncross join lateral (\n  with staged as (select st.*)\n  select * from (\n%s\n  ) as mapping\n) as m',
    v_stage, v_map.select_sql);

  -- The mapping's SQL is only ever planned or run as the tenant, inside its SECURITY DEFINER
  -- as_tenant(). First it must be exactly one query: opening a cursor on it refuses several
  -- statements before running any, and checks the tenant's privileges (an unknown column,
  -- a table the tenant may not read: refused here, before any data moves). Only then is SQL
  -- built around it executed, and spliced into the compiled functions below.
  perform ferry.install_as_tenant(v_tenant);
  execute format('drop table if exists %s', v_mapped);
  execute format('select string_agg(format(%L, column_name, format_type(type_oid, typmod)), %L) from %I.as_tenant($1, true)',
                 '%I %s', E',\n  ', v_s)
  into v_mapped_cols
  using v_query;
  execute format(E'create unlogged table %s (\n  %s\n)', v_mapped, v_mapped_cols);
  execute format('grant select, insert on %s to %I', v_mapped, v_tenant.role_name);

  v_keys := v_map.key_columns;
  if v_map.on_conflict like 'newer:%' then
    v_newer := substr(v_map.on_conflict, 7);
  end if;

  for v_out in
    select a.attname::text as name,
           a.atttypid as mapped_type,
           t.attname is not null as in_target,
           format_type(t.atttypid, t.atttypmod) as target_type,
           t.atttypid = a.atttypid and t.atttypmod = -1 as same_type,
           ty.typcategory = 'S' as texty,
           coalesce(t.attnotnull, false) as not_null,
           coalesce(t.attgenerated <> '' or t.attidentity = 'a', false) as generated
    from pg_attribute a
    left join pg_attribute t
      on t.attrelid = v_target_oid and t.attname = a.attname and t.attnum > 0 and not t.attisdropped
    left join pg_type ty on ty.oid = t.atttypid
    where a.attrelid = v_mapped::regclass and a.attnum > 0 and not a.attisdropped and a.attname <> '_line'
    order by a.attnum
  loop
    v_outputs := v_outputs || v_out.name;
    if v_out.name = v_pt.tenant_column then
      v_errors := v_errors || format('the mapping outputs the tenant column %I: pgferry sets it itself', v_out.name);
      continue;
    elsif not v_out.in_target then
      v_errors := v_errors || format('the target %s has no column %I (name each output column with AS)', v_target, v_out.name);
      continue;
    elsif v_out.generated then
      v_errors := v_errors || format('column %I of %s is generated and cannot be loaded', v_out.name, v_target);
      continue;
    end if;
    if not v_out.name = any (v_keys) then
      v_nonkeys := v_nonkeys || v_out.name;
    end if;

    -- Empty text counts as missing, except for text targets where '' is a value.
    v_presence := case when v_out.texty and not v_out.name = any (v_keys)
                       then format('m.%I is null', v_out.name)
                       else format('nullif(m.%I::text, %L) is null', v_out.name, '') end;
    v_cast := case
      when v_out.same_type then format('m.%I', v_out.name)
      when v_out.texty and not v_out.name = any (v_keys) then format('m.%I::text::%s', v_out.name, v_out.target_type)
      else format('nullif(m.%I::text, %L)::%s', v_out.name, '', v_out.target_type) end;
    -- A typed column is probed whole first (the cast of step 4, set-based): if every value
    -- casts, no value of it needs input_error().
    if v_out.same_type then
      v_type_check := 'null';
    elsif v_out.target_type ~ '^(character|bit)' and v_out.target_type !~ '^character( varying)?(\([0-9]+\))?$' then
      -- bit strings, arrays of character strings: an explicit cast cuts them to length
      -- (storing would not), so the probe would prove nothing. Value by value.
      v_type_check := format('ferry_util.input_error(m.%I::text, %L)', v_out.name, v_out.target_type);
      v_suspects := v_suspects || 'true'::text;
    else
      v_probes := v_probes || case
        -- character(n), character varying(n): the explicit cast cuts, so compare lengths.
        when v_out.target_type ~ '^character.*\(' then format(
          E'  perform from %s as m where char_length(m.%I::text) > %s limit 1;\n'
          '  v_casts_%s := not found;',
          v_mapped, v_out.name, substring(v_out.target_type from '\(([0-9]+)\)'), cardinality(v_probes) + 1)
        else format(
          E'  begin\n'
          '    perform count(%s) from %s as m;\n'
          '    v_casts_%s := true;\n'
          '  exception when data_exception then\n'
          '    v_casts_%s := false;\n'
          '  end;',
          v_cast, v_mapped, cardinality(v_probes) + 1, cardinality(v_probes) + 1) end;
      v_probe_vars := v_probe_vars || format(E'  v_casts_%s boolean;\n', cardinality(v_probes));
      v_type_check := format('case when v_casts_%s then null else ferry_util.input_error(m.%I::text, %L) end',
                             cardinality(v_probes), v_out.name, v_out.target_type);
      v_suspects := v_suspects || format('not v_casts_%s', cardinality(v_probes));
    end if;
    if v_out.name = any (v_keys) or v_out.not_null then
      v_suspects := v_suspects || v_presence;
    end if;
    if v_out.name = any (v_keys) or v_out.not_null or not v_out.same_type then
      -- The checks are columns of a subquery, and VALUES only lists them: expressions inside
      -- a LATERAL VALUES are set up anew for every row, losing their caches (pg_input_is_valid
      -- parsed its type name for every value: 15 µs a row).
      v_check_cols := v_check_cols || format(
        E'm.%I::text as value_%s,\n'
        '           case when %s then %L else %L end as rule_%s,\n'
        '           case when %s then %s else %s end as message_%s',
        v_out.name, cardinality(v_check_cols) + 1,
        v_presence,
        case when v_out.name = any (v_keys) then 'missing_key' else 'not_null' end,
        'type',
        cardinality(v_check_cols) + 1,
        v_presence,
        case when v_out.name = any (v_keys) then quote_literal(format('key column %s is empty', v_out.name))
             when v_out.not_null then quote_literal(format('column %s must not be empty', v_out.name))
             else 'null' end,
        v_type_check,
        cardinality(v_check_cols) + 1);
      v_validations := v_validations || format('(%L, c.value_%s, c.rule_%s, c.message_%s)',
        v_out.name, cardinality(v_check_cols), cardinality(v_check_cols), cardinality(v_check_cols));
    end if;

    v_work_cols := v_work_cols || format('%I %s', v_out.name, v_out.target_type);
    v_casts := v_casts || v_cast;
  end loop;

  foreach v_col in array v_keys loop
    if not v_col = any (v_outputs) then
      v_errors := v_errors || format('the key column %I is not an output of the mapping', v_col);
    end if;
  end loop;
  if v_newer is not null and not v_newer = any (v_outputs) then
    v_errors := v_errors || format('on_conflict newer:%s names a column the mapping does not output', v_newer);
  end if;
  for v_col in
    select t.attname
    from pg_attribute t
    where t.attrelid = v_target_oid and t.attnum > 0 and not t.attisdropped
      and t.attnotnull and not t.atthasdef and t.attidentity = '' and t.attgenerated = ''
      and t.attname <> v_pt.tenant_column
      and not t.attname = any (v_outputs)
    order by t.attnum
  loop
    v_errors := v_errors || format('column %I of %s is NOT NULL without a default: the mapping must output it', v_col, v_target);
  end loop;
  if cardinality(v_errors) > 0 then
    raise exception '%', array_to_string(v_errors, E'\n')
      using errcode = '42P17', detail = 'mapping ' || v_map.name || ' version ' || v_map.version;
  end if;

  -- The load's tables, owned by the loader (which writes to them: a tenant owning them could
  -- hang a trigger on them); the tenant gets the privileges its functions need.
  execute format('drop table if exists %s, %s, %s, %s', v_work, v_rejects, v_undo, v_plan);
  execute format(E'create unlogged table %s (\n  _line bigint not null,\n  %s\n)',
                 v_work, array_to_string(v_work_cols, E',\n  '));
  execute format('create unlogged table %s (line bigint, column_name text, value text, rule text not null, message text not null)', v_rejects);
  execute format('create unlogged table %s (action text not null, key jsonb not null, before jsonb, xid bigint not null)', v_undo);
  execute format('create unlogged table %s as select w.*, null::text as _action, null::jsonb as _before, null::tid as _tid from %s as w with no data',
                 v_plan, v_work);
  execute format('create index on %s (_line)', v_plan);
  execute format('grant select, insert, delete on %s to %I', v_work, v_tenant.role_name);
  execute format('grant select, insert on %s to %I', v_rejects, v_tenant.role_name);
  execute format('grant select, insert on %s to %I', v_undo, v_tenant.role_name); -- select: for RETURNING
  execute format('grant select, insert on %s to %I', v_plan, v_tenant.role_name);

  -- Declared checks run on typed values; each is tried now so a bad one fails before data moves.
  for v_check in select * from jsonb_array_elements(v_map.checks) loop
    execute format('select count(*) from %I.as_tenant($1, false)', v_s)
    into v_checked
    using format('select from %s as w where not coalesce((%s), true)', v_work, v_check->>'expression');
    v_checks_sql := v_checks_sql || format(
      E'  insert into %s (line, value, rule, message)\n'
      '  select w._line, (to_jsonb(w) - %L)::text, %L, %L\n'
      '  from %s as w\n'
      '  where not coalesce((%s), true);\n',
      v_rejects, '_line', 'check', v_check->>'message', v_work, v_check->>'expression');
  end loop;
  if v_checks_sql <> '' then
    v_checks_sql := v_checks_sql || format(
      E'  delete from %s as w using %s as r where r.line = w._line and r.rule = %L;\n',
      v_work, v_rejects, 'check');
  end if;

  -- Foreign keys to protected tables, checked as the tenant: PostgreSQL's own check ignores
  -- row-level security, so it would accept a reference to another tenant's row. Missing and
  -- foreign rows get the same reject, which tells nothing about other tenants.
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
    where c.conrelid = v_target_oid and c.contype = 'f'
    order by c.conname
  loop
    v_fk_ok := true;
    v_fk_match := '';
    for i in 1 .. cardinality(v_fk.cols) loop
      if v_fk.cols[i] = v_pt.tenant_column then
        v_fk_match := v_fk_match || format(' and r.%I = %s', v_fk.ref_cols[i], v_tenant_value);
      elsif v_fk.cols[i] = any (v_outputs) then
        v_fk_match := v_fk_match || format(' and r.%I = w.%I', v_fk.ref_cols[i], v_fk.cols[i]);
      else
        v_fk_ok := false; -- a column the mapping does not set: left to the constraint itself
      end if;
    end loop;
    continue when not v_fk_ok;
    v_fk_sql := v_fk_sql || format(
      E'  insert into %s (line, column_name, value, rule, message)\n'
      '  select w._line, %L, %s, %L, %L\n'
      '  from %s as w\n'
      '  where %s\n'
      '    and not exists (select from %s as r where %s);\n',
      v_rejects,
      array_to_string(array(select c from unnest(v_fk.cols) c where c <> v_pt.tenant_column), ', '),
      (select string_agg(format('w.%I::text', c), ' || '','' || ') from unnest(v_fk.cols) c where c <> v_pt.tenant_column),
      'foreign_key',
      format('no row of %s with that %s for this tenant (%s)', v_fk.ref_table,
             array_to_string(v_fk.ref_cols, ', '), v_fk.conname),
      v_work,
      (select string_agg(format('w.%I is not null', c), ' and ') from unnest(v_fk.cols) c where c <> v_pt.tenant_column),
      v_fk.ref_table, substr(v_fk_match, 6));
  end loop;
  if v_fk_sql <> '' then
    v_fk_sql := v_fk_sql || format(
      E'  delete from %s as w using %s as r where r.line = w._line and r.rule = %L;\n',
      v_work, v_rejects, 'foreign_key');
  end if;

  v_key_match := (select string_agg(format('w.%I = d.%I', k, k), ' and ') from unnest(v_keys) k);
  v_dup_sql := format(
    E'  with dup as (\n'
    '    select %s, count(*) as n, min(_line) as first_line, max(_line) as last_line\n'
    '    from %s\n'
    '    group by %s\n'
    '    having count(*) > 1\n'
    '  )\n'
    '  insert into %s (line, value, rule, message)\n'
    '  select w._line, %s, %s\n'
    '  from %s as w\n'
    '  join dup as d on %s\n'
    '  where %s;\n'
    '  delete from %s as w using %s as r where r.line = w._line and r.rule in (%L, %L);\n',
    (select string_agg(quote_ident(k), ', ') from unnest(v_keys) k),
    v_work,
    (select string_agg(quote_ident(k), ', ') from unnest(v_keys) k),
    v_rejects,
    format('jsonb_build_object(%s)::text',
           (select string_agg(format('%L, w.%I', k, k), ', ') from unnest(v_keys) k)),
    case v_map.duplicates
      when 'last' then format('%L, format(%L, d.n, d.last_line)', 'duplicate',
                              'key appears on %s lines; line %s wins (duplicates: last)')
      when 'first' then format('%L, format(%L, d.n, d.first_line)', 'duplicate',
                               'key appears on %s lines; line %s wins (duplicates: first)')
      else format('%L, format(%L, d.n)', 'duplicate_key', 'key appears on %s lines (duplicates: reject)') end,
    v_work,
    v_key_match,
    case v_map.duplicates
      when 'last' then 'w._line <> d.last_line'
      when 'first' then 'w._line <> d.first_line'
      else 'true' end,
    v_work, v_rejects, 'duplicate', 'duplicate_key');

  -- The typed columns' probes, then all columns' checks in one pass over the mapped rows.
  if cardinality(v_validations) > 0 then
    v_column_checks := format(
      E'  insert into %s (line, column_name, value, rule, message)\n'
      '  select c._line, v.column_name, v.value, v.rule, v.message\n'
      '  from (\n'
      '    select m._line,\n'
      '           %s\n'
      '    from %s as m\n'
      '    -- only rows where some check can fail: with every probe passed, a few null tests\n'
      '    where %s\n'
      '    offset 0 -- kept a subquery: its columns are computed once per row\n'
      '  ) as c\n'
      '  cross join lateral (values\n'
      '    %s\n'
      '  ) as v (column_name, value, rule, message)\n'
      '  where v.message is not null;',
      v_rejects,
      array_to_string(v_check_cols, E',\n           '),
      v_mapped,
      array_to_string(v_suspects, E'\n       or '),
      array_to_string(v_validations, E',\n    '));
    if cardinality(v_probes) > 0 then
      v_column_checks := array_to_string(v_probes, E'\n') || E'\n' || v_column_checks;
    end if;
  end if;

  v_transform := format(
    E'create function %I.%I() returns void\n'
    'language plpgsql security definer set search_path = public, pg_temp\n'
    'as %s\n'
    'declare\n'
    '  v_line bigint;\n'
    '%s'
    'begin\n'
    '  -- 1. the mapping, one output row per staged line\n'
    '  begin\n'
    '    insert into %s\n'
    '%s;\n'
    '  exception when data_exception then\n'
    '    -- A value made the mapping itself fail (a cast, a division): run it line by line,\n'
    '    -- each under its own savepoint, and reject the lines that fail.\n'
    '    for v_line in select _line from %s order by _line loop\n'
    '      begin\n'
    '        insert into %s\n'
    '%s\n'
    '        where st._line = v_line;\n'
    '      exception when data_exception then\n'
    '        insert into %s (line, rule, message) values (v_line, %L, sqlerrm);\n'
    '      end;\n'
    '    end loop;\n'
    '  end;\n\n'
    '  -- 2. lines the mapping dropped or multiplied\n'
    '  insert into %s (line, rule, message)\n'
    '  select st._line, %L, %L\n'
    '  from %s as st\n'
    '  where not exists (select from %s as m where m._line = st._line)\n'
    '    and not exists (select from %s as r where r.line = st._line);\n'
    '  insert into %s (line, rule, message)\n'
    '  select _line, %L, format(%L, count(*))\n'
    '  from %s\n'
    '  group by _line\n'
    '  having count(*) > 1;\n\n'
    '  -- 3. each output value against the target column''s type, NOT NULL and key\n'
    '%s\n\n'
    '  -- 4. typed work table of the lines that passed\n'
    '  insert into %s (_line, %s)\n'
    '  select m._line, %s\n'
    '  from %s as m\n'
    '  where not exists (select from %s as r where r.line = m._line);\n\n'
    '  -- 5. declared checks\n'
    '%s\n'
    '  -- 6. references to protected tables, as this tenant sees them\n'
    '%s\n'
    '  -- 7. duplicate keys within the load\n'
    '%s'
    'end\n'
    '%s',
    v_s, 'transform_' || p_load, v_tag,
    v_probe_vars,
    v_mapped, v_query,
    v_stage, v_mapped, v_query, v_rejects, 'mapping_error',
    v_rejects, 'filtered', 'the mapping returned no row for this line', v_stage, v_mapped, v_rejects,
    v_rejects, 'fanout', 'the mapping returned %s rows for this line', v_mapped,
    v_column_checks,
    v_work, (select string_agg(quote_ident(o), ', ') from unnest(v_outputs) o),
    array_to_string(v_casts, E',\n         '),
    v_mapped, v_rejects,
    v_checks_sql,
    v_fk_sql,
    v_dup_sql,
    v_tag);

  -- What promotion will do with each row, decided once the load holds its lock.
  v_action := format('case when t.ctid is null then %L', 'insert');
  if cardinality(v_nonkeys) > 0 then
    v_action := v_action || format(' when (%s) is not distinct from (%s) then %L',
      (select string_agg(format('w.%I', c), ', ') from unnest(v_nonkeys) c),
      (select string_agg(format('t.%I', c), ', ') from unnest(v_nonkeys) c),
      'unchanged');
  else
    v_action := v_action || format(' when true then %L', 'unchanged');
  end if;
  v_action := v_action || case
    when v_map.on_conflict = 'skip' then format(' else %L end', 'skip')
    when v_map.on_conflict = 'reject' then format(' else %L end', 'conflict')
    when v_newer is not null then format(
      ' when w.%I > t.%I or (t.%I is null and w.%I is not null) then %L else %L end',
      v_newer, v_newer, v_newer, v_newer, 'update', 'skip')
    else format(' else %L end', 'update') end;

  -- Two ways to the same plan rows. A join, which the planner may make a hash join: one scan
  -- of the target for a load of any size. Or, when ferry.prefers_key_lookups() says so (a
  -- small load into a large target), a LATERAL subquery that cannot be pulled up, so that
  -- each work row looks its row up by key. Disabling hash joins instead was not enough: where
  -- the statistics have not seen the tenant, the planner took its rows for one and scanned
  -- them all again for every work row.
  v_plan_fn := format(
    E'create function %I.%I() returns bigint\n'
    'language plpgsql security definer set search_path = public, pg_temp\n'
    'as %s\n'
    'declare\n'
    '  v_rows bigint;\n'
    'begin\n'
    '  if coalesce(current_setting(%L, true), %L) = %L then\n'
    '    insert into %s\n'
    '    select w.*, a._action,\n'
    '           case when a._action = %L then to_jsonb(t) - %L end as _before,\n'
    '           t._tid\n'
    '    from %s as w\n'
    '    left join lateral (\n'
    '      select t.*, t.ctid as _tid from %s as t where t.%I = %s and %s\n'
    '      offset 0  -- kept a subquery: looked up once per work row\n'
    '    ) as t on true\n'
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
    v_s, 'plan_' || p_load, v_tag,
    'pgferry.plan_by_key', '', 'on',
    v_plan, 'update', '_tid', v_work, v_target, v_pt.tenant_column, v_tenant_value,
    (select string_agg(format('t.%I = w.%I', k, k), ' and ') from unnest(v_keys) k),
    -- v_action tells an insert by the missing ctid; the subquery's row has _tid for it
    replace(v_action, 'case when t.ctid is null', 'case when t._tid is null'),
    v_plan, 'update', v_work, v_target, v_pt.tenant_column, v_tenant_value,
    (select string_agg(format('t.%I = w.%I', k, k), ' and ') from unnest(v_keys) k),
    v_action,
    v_tag);

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
      E'  v_updates := array(select w from %s as w where w._line between p_lo and p_hi and w._action = %L);\n'
      '  if cardinality(v_updates) > 0 then\n'
      '    v_settings := array(select current_setting(s) from unnest(%L::text[]) as s);\n'
      '    perform set_config(s, v, true) from unnest(%L::text[], %L::text[]) as x(s, v);\n'
      '    with written as (\n'
      '      update %s as t\n'
      '      set %s\n'
      '      from unnest(v_updates) as w\n'
      '      where t.ctid = w._tid and t.%I = %s and %s\n'
      '      returning %s as key, w._before as before, t.xmin::text::bigint as xid\n'
      '    )\n'
      '    insert into %s (action, key, before, xid)\n'
      '    select %L, key, before, xid from written;\n'
      '    get diagnostics v_updated = row_count;\n'
      '    perform set_config(s, v, true) from unnest(%L::text[], v_settings) as x(s, v);\n'
      '  end if;\n',
      v_plan, 'update',
      v_by_ctid_settings,
      v_by_ctid_settings, v_by_ctid_values,
      v_target,
      (select string_agg(format('%I = w.%I', c, c), ', ') from unnest(v_nonkeys) c),
      v_pt.tenant_column, v_tenant_value,
      (select string_agg(format('t.%I = w.%I', k, k), ' and ') from unnest(v_keys) k),
      v_written_key,
      v_undo, 'update',
      v_by_ctid_settings)
    else '' end;
  v_promote := format(
    E'create function %I.%I(p_lo bigint, p_hi bigint) returns bigint[]\n'
    'language plpgsql security definer set search_path = public, pg_temp\n'
    'as %s\n'
    'declare\n'
    '  v_counts   bigint[];\n'
    '  v_inserted bigint;\n'
    '  v_updated  bigint := 0;\n'
    '  v_updates  %s[];\n'
    '  v_settings text[];\n'
    'begin\n'
    '  insert into %s (line, value, rule, message)\n'
    '  select p._line, jsonb_build_object(%s)::text, %L, %L\n'
    '  from %s as p\n'
    '  where p._line between p_lo and p_hi and p._action = %L;\n\n'
    '  -- Planned inserts, written without a join with the target. The undo log keeps their\n'
    '  -- keys, one array a batch, and the id of the transaction that wrote them: a row changed\n'
    '  -- later has another xmin, which is how rollback tells.\n'
    '  with written as (\n'
    '    insert into %s as t (%I, %s)\n'
    '    select %s, %s\n'
    '    from %s as w\n'
    '    where w._line between p_lo and p_hi and w._action = %L\n'
    '    returning %s as key, t.xmin::text::bigint as xid\n'
    '  )\n'
    '  insert into %s (action, key, xid)\n'
    '  select %L, jsonb_agg(key), max(xid) from written having count(*) > 0\n'
    '  returning jsonb_array_length(key) into v_inserted;\n\n'
    '  -- Planned updates, by key; the undo log keeps each before-image.\n'
    '%s\n'
    '  select array[count(*) filter (where _action = %L),\n'
    '               count(*) filter (where _action = %L),\n'
    '               count(*) filter (where _action in (%L, %L)),\n'
    '               count(*) filter (where _action = %L)]\n'
    '  into v_counts\n'
    '  from %s\n'
    '  where _line between p_lo and p_hi;\n'
    '  if coalesce(v_inserted, 0) <> v_counts[1] then\n'
    '    raise exception using errcode = %L, message = (v_counts[1] - coalesce(v_inserted, 0)) || %L;\n'
    '  end if;\n'
    '  if v_updated <> v_counts[2] then\n'
    '    raise exception using errcode = %L, message = (v_counts[2] - v_updated) || %L;\n'
    '  end if;\n'
    '  return v_counts;\n'
    'end\n'
    '%s',
    v_s, 'promote_' || p_load, v_tag,
    v_plan,
    v_rejects,
    (select string_agg(format('%L, p.%I', k, k), ', ') from unnest(v_keys) k),
    'conflict', 'the key already exists for this tenant (on_conflict: reject)',
    v_plan, 'conflict',
    v_target, v_pt.tenant_column, (select string_agg(quote_ident(o), ', ') from unnest(v_outputs) o),
    v_tenant_value, (select string_agg(format('w.%I', o), ', ') from unnest(v_outputs) o),
    v_plan, 'insert',
    v_written_key,
    v_undo, 'inserts',
    v_update_sql,
    'insert', 'update', 'unchanged', 'skip', 'conflict',
    v_plan,
    'P0002',
    format(' row(s) planned for insert were not inserted into %s: skipped by a trigger', v_target),
    'P0002',
    format(' row(s) planned for update were not updated in %s: changed or deleted by another writer during the load, or skipped by a trigger',
           v_target),
    v_tag);

  -- Created by the loader (nothing of them runs now), then given to the tenant: as SECURITY
  -- DEFINER functions they run as the tenant, where PostgreSQL refuses any change of role.
  execute format('drop function if exists %I.%I()', v_s, 'transform_' || p_load);
  execute format('drop function if exists %I.%I()', v_s, 'plan_' || p_load);
  execute format('drop function if exists %I.%I(bigint, bigint)', v_s, 'promote_' || p_load);
  execute v_transform;
  execute v_plan_fn;
  execute v_promote;
  execute format('alter function %I.%I() owner to %I', v_s, 'transform_' || p_load, v_tenant.role_name);
  execute format('alter function %I.%I() owner to %I', v_s, 'plan_' || p_load, v_tenant.role_name);
  execute format('alter function %I.%I(bigint, bigint) owner to %I', v_s, 'promote_' || p_load, v_tenant.role_name);
  perform ferry.restrict_to_loader(format('%I.%I()', v_s, 'transform_' || p_load), v_tenant);
  perform ferry.restrict_to_loader(format('%I.%I()', v_s, 'plan_' || p_load), v_tenant);
  perform ferry.restrict_to_loader(format('%I.%I(bigint, bigint)', v_s, 'promote_' || p_load), v_tenant);

  update ferry.loads
  set compiled_sql = v_transform || E';\n\n' || v_plan_fn || E';\n\n' || v_promote || E';\n'
  where id = p_load
  returning compiled_sql into v_transform;
  update ferry.mappings set compiled_sql = v_transform where id = v_map.id;
  return v_transform;
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
