-- Loads of one tenant compiling or registering a mapping at the same moment (found with plans).
--
-- Plans run loads of one tenant side by side (independent branches), and so may a worker
-- (loads of one tenant into different tables are different queues). Two loads of a tenant
-- compiling at once both dropped and created the tenant's as_tenant() (4_compile.sql): the
-- second create failed on pg_proc's unique index. Compiles of one tenant now take turns at
-- that point (a lock held until the compiling transaction ends, a moment later).
create or replace function ferry.install_as_tenant(p_tenant ferry.tenants) returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  perform pg_advisory_xact_lock(hashtextextended('pgferry:as_tenant:' || p_tenant.schema_name, 0));
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

-- compile_load: as in 15_faster_increments.sql, with plan_N() and promote_N() from
-- ferry.promotion_functions_sql().
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
  -- Why a value is not of its type: asked softly on PostgreSQL 16+ (see validation.sql).
  v_input_error text := case when current_setting('server_version_num')::integer >= 160000
                             then 'ferry_util.soft_input_error' else 'ferry_util.input_error' end;
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
      v_type_check := format('%s(m.%I::text, %L)', v_input_error, v_out.name, v_out.target_type);
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
      v_type_check := format('case when v_casts_%s then null else %s(m.%I::text, %L) end',
                             cardinality(v_probes), v_input_error, v_out.name, v_out.target_type);
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

  select f.plan_sql, f.promote_sql into v_plan_fn, v_promote
  from ferry.promotion_functions_sql(p_load, v_tag, v_tenant, v_map, v_pt, v_outputs) as f;

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
