-- A tenant's whole data, out and back in: `pgferry tenant backup`, `restore`, `copy`, the
-- rollback of a restore, and `purge`.
--
-- Everything that reads or writes a tenant's rows does it as the tenant, under row-level
-- security: a backup through prepare_export() (export.sql), a restore, its rollback and a
-- purge through ferry.as_tenant_exec(), one statement in a SECURITY DEFINER function the
-- tenant owns. The loader only moves bytes: COPY out of the tenant's export, COPY into a
-- table of its own in the tenant's schema that the tenant then reads.

-- The protected tables, parents before children: a table comes after every protected table
-- its foreign keys reference (a cycle is cut where it closes). A backup writes them in this
-- order and a restore inserts them in it; a purge deletes in the reverse order.
create or replace function ferry.protected_tables_in_order()
returns table (ordinal integer, schema_name name, table_name name, tenant_column name, tenant_type text)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  with recursive pt as (
    select p.*, c.oid as relid
    from ferry.protected_tables p
    join pg_namespace n on n.nspname = p.schema_name
    join pg_class c on c.relnamespace = n.oid and c.relname = p.table_name
  ),
  refs as (
    select distinct k.conrelid as child, k.confrelid as parent
    from pg_constraint k
    where k.contype = 'f' and k.conrelid <> k.confrelid
      and k.conrelid in (select relid from pt) and k.confrelid in (select relid from pt)
  ),
  depth (relid, d, path) as (
    select relid, 0, array[relid] from pt
    union all
    select r.child, depth.d + 1, depth.path || r.child
    from depth join refs r on r.parent = depth.relid
    where r.child <> all (depth.path)
  )
  select (row_number() over (order by max(depth.d), pt.schema_name, pt.table_name))::integer,
         pt.schema_name, pt.table_name, pt.tenant_column, pt.tenant_type
  from pt join depth on depth.relid = pt.relid
  group by pt.relid, pt.schema_name, pt.table_name, pt.tenant_column, pt.tenant_type
  order by 1
$$;

-- The columns of a protected table that a backup keeps: all but the tenant column (a restore
-- writes the key of the tenant it restores into) and generated ones, in the table's order.
create or replace function ferry.backup_columns(p_schema name, p_table name)
returns table (column_name name, type_name text)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select a.attname, format_type(a.atttypid, a.atttypmod)
  from pg_attribute a
  join ferry.protected_tables pt on pt.schema_name = p_schema and pt.table_name = p_table
  where a.attrelid = format('%I.%I', p_schema, p_table)::regclass
    and a.attnum > 0 and not a.attisdropped and a.attgenerated = ''
    and a.attname <> pt.tenant_column
  order by a.attnum
$$;

-- What a backup of tenant p_tenant holds, in the order it writes it: each protected table
-- (display: its name as SQL quotes it), its columns and the SELECT that reads its rows (run
-- as the tenant by prepare_export).
create or replace function ferry.backup_tables(p_tenant text)
returns table (ordinal integer, schema_name name, table_name name, display text, columns jsonb, query text)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select o.ordinal, o.schema_name, o.table_name, format('%I.%I', o.schema_name, o.table_name),
         (select jsonb_agg(jsonb_build_object('name', c.column_name, 'type', c.type_name))
          from ferry.backup_columns(o.schema_name, o.table_name) c),
         format('select %s from %I.%I where %I = %L::%s',
                (select string_agg(quote_ident(c.column_name), ', ') from ferry.backup_columns(o.schema_name, o.table_name) c),
                o.schema_name, o.table_name, o.tenant_column, (ferry.tenant(p_tenant)).tenant_key, o.tenant_type)
  from ferry.protected_tables_in_order() o
  order by o.ordinal
$$;

-- What pgferry holds for a tenant, for its backup: its key, the mapping versions its loads
-- and syncs used, its syncs with their state (cursor, last run).
create or replace function ferry.tenant_catalog(p_tenant text) returns jsonb
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  with t as (select * from ferry.tenant(p_tenant))
  select jsonb_build_object(
    'tenant', (select jsonb_build_object('slug', t.slug, 'key', t.tenant_key) from t),
    'mappings', coalesce((
      select jsonb_agg(jsonb_build_object(
               'name', m.name, 'version', m.version, 'sha256', m.sha256, 'source', m.source,
               'source_path', m.source_path, 'target', format('%I.%I', m.target_schema, m.target_table),
               'key_columns', m.key_columns, 'on_conflict', m.on_conflict, 'duplicates', m.duplicates,
               'checks', m.checks, 'select_sql', m.select_sql, 'select_line', m.select_line)
             order by m.name, m.version)
      from ferry.mappings m
      where m.id in (select l.mapping_id from ferry.loads l, t where l.tenant_id = t.id)
         or (m.name, m.version) in (select s.mapping, max(m2.version) from ferry.syncs s
                                    join ferry.mappings m2 on m2.name = s.mapping, t
                                    where s.tenant_id = t.id group by s.mapping)), '[]'),
    'syncs', coalesce((
      select jsonb_agg(jsonb_build_object(
               'name', s.name, 'mapping', s.mapping, 'mode', s.mode, 'schedule', s.schedule,
               'config', s.config, 'paused_at', s.paused_at,
               'state', to_jsonb(st) - 'sync_name' - 'last_load_id')
             order by s.name)
      from ferry.syncs s
      left join ferry.sync_state st on st.sync_name = s.name, t
      where s.tenant_id = t.id), '[]'))
$$;

-- Runs one statement as the tenant: in a SECURITY DEFINER function it owns, made for the
-- call and dropped after it, that only the loader may call. Returns the statement's row
-- count (PERFORM … counts the rows of a query). p_statement is built by the functions of this
-- file from the catalog, never from a file's text.
create or replace function ferry.as_tenant_exec(p_tenant ferry.tenants, p_statement text) returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_id   text := replace(gen_random_uuid()::text, '-', '');
  v_name text := 'exec_' || v_id;
  v_tag  text := '$pgferry_' || v_id || '$';
  v_rows bigint;
begin
  execute format(
    E'create function %I.%I() returns bigint\n'
    'language plpgsql security definer set search_path = public, pg_temp\n'
    'as %s\n'
    'declare\n  v_rows bigint;\nbegin\n%s;\n  get diagnostics v_rows = row_count;\n  return v_rows;\nend\n%s',
    p_tenant.schema_name, v_name, v_tag, p_statement, v_tag);
  execute format('alter function %I.%I() owner to %I', p_tenant.schema_name, v_name, p_tenant.role_name);
  perform ferry.restrict_to_loader(format('%I.%I()', p_tenant.schema_name, v_name), p_tenant);
  execute format('select %I.%I()', p_tenant.schema_name, v_name) into v_rows;
  execute format('drop function %I.%I()', p_tenant.schema_name, v_name);
  return v_rows;
end
$$;

-- Takes, until the transaction ends, the lock a load's promotion (and its rollback) takes on
-- each protected table of the tenant (ferry.lock_target), parents first: a restore, its
-- rollback or a purge waits for the tenant's running promotions, and they for it.
create or replace function ferry.lock_tenant_targets(p_tenant text) returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_table record;
begin
  for v_table in select * from ferry.protected_tables_in_order() order by ordinal loop
    perform ferry.lock_row('target', format('%s:%s.%s', p_tenant, v_table.schema_name, v_table.table_name));
  end loop;
end
$$;

-- The tenant's rows in one protected table, counted as the tenant.
create or replace function ferry.tenant_row_count(p_tenant ferry.tenants, p_schema name, p_table name) returns bigint
language sql
set search_path = pg_catalog, pg_temp
as $$
  select ferry.as_tenant_exec(p_tenant, format('perform from %I.%I where %I = %L::%s',
                                              pt.schema_name, pt.table_name, pt.tenant_column,
                                              p_tenant.tenant_key, pt.tenant_type))
  from ferry.protected_tables pt
  where pt.schema_name = p_schema and pt.table_name = p_table
$$;

-- Why the tables of a backup cannot be restored here, a line each; none when they can.
-- p_tables: [{"schema", "table", "columns": [{"name", "type"}]}]. Each table must exist and
-- be protected, and have every column of the backup, of the same type and not generated;
-- a column of its own that the backup lacks must have a default or take NULL.
create or replace function ferry.restore_differences(p_tables jsonb) returns setof text
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_table jsonb;
  v_rel   regclass;
  v_pt    ferry.protected_tables;
  v_name  text;
  v_col   jsonb;
  v_att   record;
begin
  for v_table in select * from jsonb_array_elements(p_tables) loop
    v_name := format('%I.%I', v_table->>'schema', v_table->>'table');
    v_rel := to_regclass(v_name);
    if v_rel is null then
      return next format('%s: no such table', v_name);
      continue;
    end if;
    select * into v_pt from ferry.protected_tables
    where schema_name = v_table->>'schema' and table_name = v_table->>'table';
    if not found then
      return next format('%s: not protected (pgferry tenant protect %s)', v_name, v_name);
      continue;
    end if;
    for v_col in select * from jsonb_array_elements(v_table->'columns') loop
      select a.attname, format_type(a.atttypid, a.atttypmod) as type_name, a.attgenerated into v_att
      from pg_attribute a
      where a.attrelid = v_rel and a.attname = v_col->>'name' and a.attnum > 0 and not a.attisdropped;
      if not found then
        return next format('%s: no column %I (%s in the backup)', v_name, v_col->>'name', v_col->>'type');
      elsif v_att.attname = v_pt.tenant_column then
        return next format('%s: column %I is the tenant column here, a column of the rows in the backup', v_name, v_att.attname);
      elsif v_att.type_name <> v_col->>'type' then
        return next format('%s: column %I is %s here, %s in the backup', v_name, v_att.attname, v_att.type_name, v_col->>'type');
      elsif v_att.attgenerated <> '' then
        return next format('%s: column %I is generated here', v_name, v_att.attname);
      end if;
    end loop;
    return query
      select format('%s: column %I (%s) is not null without a default, and not in the backup',
                    v_name, a.attname, format_type(a.atttypid, a.atttypmod))
      from pg_attribute a
      where a.attrelid = v_rel and a.attnum > 0 and not a.attisdropped and a.attnotnull
        and not a.atthasdef and a.attidentity = '' and a.attgenerated = ''
        and a.attname <> v_pt.tenant_column
        and not exists (select from jsonb_array_elements(v_table->'columns') c where c->>'name' = a.attname)
      order by a.attnum;
  end loop;
end
$$;

-- Starts a restore, in the restore's transaction: the tenant (added when missing, with
-- p_key or else its slug), the tables checked (one error listing every difference), the
-- tenant's current rows in the backup's tables refused, or with p_replace deleted as the
-- tenant (children first) and kept in ferry.restore_undo. Returns the restore's row.
create or replace function ferry.begin_restore(
  p_tenant        text,
  p_key           text,
  p_replace       boolean,
  p_source        text,
  p_backup_tenant text,
  p_tables        jsonb,
  p_os_user       text
) returns ferry.restores
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant    ferry.tenants;
  v_problems  text[];
  v_restore   ferry.restores;
  v_table     record;
  v_rows      bigint;
  v_has_rows  text[] := '{}';
  v_undo      text;
begin
  perform ferry.check_slug(p_tenant);
  perform ferry.lock_row('tenant', p_tenant);
  perform ferry.lock_tenant_targets(p_tenant);
  select * into v_tenant from ferry.tenants where slug = p_tenant;
  if not found then
    v_tenant := ferry.add_tenant(p_tenant, p_key);
  end if;

  v_problems := array(select ferry.restore_differences(p_tables));
  if cardinality(v_problems) > 0 then
    raise exception 'the backup does not fit the tables here: %', array_to_string(v_problems, '; ')
      using errcode = '42804', detail = array_to_string(v_problems, E'\n'),
            hint = 'create or alter the tables to match the backup''s columns (pgferry tenant verify FILE lists them)';
  end if;

  insert into ferry.restores (tenant_id, source, backup_tenant, replaced, xid, os_user)
  values (v_tenant.id, p_source, p_backup_tenant, p_replace,
          pg_current_xact_id()::text::bigint % 4294967296, p_os_user)
  returning * into v_restore;

  for v_table in
    select o.* from ferry.protected_tables_in_order() o
    where exists (select from jsonb_array_elements(p_tables) t
                  where t->>'schema' = o.schema_name and t->>'table' = o.table_name)
    order by o.ordinal desc
  loop
    v_rows := ferry.tenant_row_count(v_tenant, v_table.schema_name, v_table.table_name);
    if v_rows > 0 then
      v_has_rows := v_has_rows || format('%I.%I (%s rows)', v_table.schema_name, v_table.table_name, v_rows);
      if p_replace then
        -- The rows go, as the tenant, into a table the loader then moves into ferry.restore_undo.
        v_undo := format('%I.%I', v_tenant.schema_name, 'restore_undo_' || v_restore.id);
        execute format('create unlogged table %s (before jsonb not null)', v_undo);
        execute format('grant insert on %s to %I', v_undo, v_tenant.role_name);
        perform ferry.as_tenant_exec(v_tenant, format(
          'with gone as (delete from %I.%I as t where t.%I = %L::%s returning to_jsonb(t) as before) '
          'insert into %s (before) select before from gone',
          v_table.schema_name, v_table.table_name, v_table.tenant_column, v_tenant.tenant_key,
          v_table.tenant_type, v_undo));
        execute format('insert into ferry.restore_undo (restore_id, target_schema, target_table, before)
                        select $1, $2, $3, before from %s', v_undo)
        using v_restore.id, v_table.schema_name, v_table.table_name;
        execute format('drop table %s', v_undo);
      end if;
    end if;
  end loop;
  if cardinality(v_has_rows) > 0 and not p_replace then
    raise exception 'tenant % has rows already: %', p_tenant, array_to_string(v_has_rows, ', ')
      using errcode = '55000', hint = 'replace them with --replace, or restore under another tenant with --as NAME';
  end if;
  return v_restore;
end
$$;

-- The tenant a restore writes into.
create or replace function ferry.restore_tenant(p_restore bigint) returns ferry.tenants
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select t.* from ferry.tenants t join ferry.restores r on r.tenant_id = t.id where r.id = p_restore
$$;

-- The name, quoted, of the table a restore COPYs its p_position-th backed-up table into.
create or replace function ferry.restore_stage(p_tenant ferry.tenants, p_restore bigint, p_position integer) returns text
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
  select format('%I.%I', p_tenant.schema_name, format('restore_%s_%s', p_restore, p_position))
$$;

-- The table a restore COPYs one backed-up table into: in the tenant's schema, owned by the
-- loader, with the backup's columns typed as the target's (so COPY checks each value), and
-- readable by the tenant. Returns its name, quoted.
create or replace function ferry.prepare_restore_table(p_restore bigint, p_position integer, p_schema name, p_table name,
                                                       p_columns text[])
returns text
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant ferry.tenants := ferry.restore_tenant(p_restore);
  v_stage  text := ferry.restore_stage(v_tenant, p_restore, p_position);
begin
  execute format('create unlogged table %s (%s)', v_stage,
                 (select string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)), ', ' order by c.n)
                  from unnest(p_columns) with ordinality as c (name, n)
                  join pg_attribute a on a.attrelid = format('%I.%I', p_schema, p_table)::regclass
                                     and a.attname = c.name and a.attnum > 0 and not a.attisdropped));
  execute format('grant select on %s to %I', v_stage, v_tenant.role_name);
  return v_stage;
end
$$;

-- Writes the rows COPYed into a restore's table into their target, as the tenant (row-level
-- security checks each row is the tenant's), the tenant column set to the tenant's key.
-- Drops the restore's table; returns the rows inserted.
create or replace function ferry.restore_table(p_restore bigint, p_position integer, p_schema name, p_table name,
                                               p_columns text[])
returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant ferry.tenants := ferry.restore_tenant(p_restore);
  v_stage  text := ferry.restore_stage(v_tenant, p_restore, p_position);
  v_pt     ferry.protected_tables;
  v_cols   text := (select string_agg(quote_ident(c), ', ') from unnest(p_columns) c);
  v_rows   bigint;
begin
  select * into strict v_pt from ferry.protected_tables where schema_name = p_schema and table_name = p_table;
  v_rows := ferry.as_tenant_exec(v_tenant, format(
    'insert into %I.%I (%I, %s) overriding system value select %L::%s, %s from %s',
    p_schema, p_table, v_pt.tenant_column, v_cols, v_tenant.tenant_key, v_pt.tenant_type, v_cols, v_stage));
  perform ferry.note_sequences(p_schema, p_table, v_stage);
  execute format('drop table %s', v_stage);
  return v_rows;
end
$$;

-- Notes, for ferry.advance_sequences at the restore's end, the largest value restored in each
-- serial and identity column of a restored table (read from the restore's own table p_stage,
-- not the target, which row-level security may hide from the loader). In a temporary table
-- of the restoring transaction: setval is not transactional, so sequences move only once
-- every table and the trailer passed, just before the commit.
create or replace function ferry.note_sequences(p_schema name, p_table name, p_stage text) returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_seq record;
begin
  create temporary table if not exists pgferry_restore_sequences (seq text primary key, value bigint not null)
    on commit drop;
  for v_seq in
    select a.attname, pg_get_serial_sequence(format('%I.%I', p_schema, p_table), a.attname) as seq
    from pg_attribute a
    where a.attrelid = format('%I.%I', p_schema, p_table)::regclass and a.attnum > 0 and not a.attisdropped
      and pg_get_serial_sequence(format('%I.%I', p_schema, p_table), a.attname) is not null
      and exists (select from pg_attribute s
                  where s.attrelid = p_stage::regclass and s.attname = a.attname and s.attnum > 0)
  loop
    execute format('insert into pg_temp.pgferry_restore_sequences as n (seq, value)
                    select %L, max(%I) from %s having max(%I) is not null
                    on conflict (seq) do update set value = greatest(n.value, excluded.value)',
                   v_seq.seq, v_seq.attname, p_stage, v_seq.attname);
  end loop;
end
$$;

-- Moves the sequences noted by ferry.note_sequences past the largest value restored: rows
-- restored with their ids would otherwise collide with the next rows the application
-- inserts. A value within 1% of its sequence's maximum is refused (the restore with it): a
-- backup's ids could otherwise exhaust a sequence every tenant's rows draw from. A sequence
-- the loader may not set is left as it is.
create or replace function ferry.advance_sequences() returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_seq record;
begin
  if to_regclass('pg_temp.pgferry_restore_sequences') is null then
    return;
  end if;
  for v_seq in
    select n.seq, n.value, s.seqmax
    from pg_temp.pgferry_restore_sequences n
    join pg_sequence s on s.seqrelid = n.seq::regclass
  loop
    if v_seq.value > v_seq.seqmax - v_seq.seqmax / 100 then
      raise exception 'the backup holds % in the column behind sequence %, within 1%% of its maximum %: not restored',
        v_seq.value, v_seq.seq, v_seq.seqmax
        using errcode = '22003', hint = 'a restore would leave that sequence, which every tenant''s rows draw from, nearly exhausted';
    end if;
    begin
      execute format('select setval(%L, greatest(%s, s.last_value), true) from %s as s', v_seq.seq, v_seq.value, v_seq.seq);
    exception when insufficient_privilege then
      null;
    end;
  end loop;
end
$$;

-- Registers the mapping versions of a backup's catalog (those whose target is protected
-- here) and adds its syncs, with their state, under the restored tenant (a sync whose name
-- is taken here is left out). Returns {mappings, syncs, skipped}.
create or replace function ferry.restore_catalog(p_tenant text, p_catalog jsonb) returns jsonb
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant   ferry.tenants := ferry.tenant(p_tenant);
  v_m        jsonb;
  v_s        jsonb;
  v_mappings integer := 0;
  v_syncs    integer := 0;
  v_skipped  text[] := '{}';
  v_target   regclass;
begin
  for v_m in select * from jsonb_array_elements(coalesce(p_catalog->'mappings', '[]')) loop
    v_target := to_regclass(v_m->>'target');
    if v_target is null or not exists (
         select from ferry.protected_tables pt join pg_namespace n on n.nspname = pt.schema_name
         join pg_class c on c.relnamespace = n.oid and c.relname = pt.table_name where c.oid = v_target) then
      v_skipped := v_skipped || format('mapping %s version %s (its target %s is not protected here)',
                                       v_m->>'name', v_m->>'version', v_m->>'target');
      continue;
    end if;
    perform ferry.register_mapping(
      v_m->>'name', v_m->>'source', v_m->>'sha256', v_m->>'source_path', v_m->>'target',
      array(select jsonb_array_elements_text(v_m->'key_columns')), v_m->>'on_conflict', v_m->>'duplicates',
      v_m->'checks', v_m->>'select_sql', (v_m->>'select_line')::integer);
    v_mappings := v_mappings + 1;
  end loop;
  for v_s in select * from jsonb_array_elements(coalesce(p_catalog->'syncs', '[]')) loop
    if exists (select from ferry.syncs where name = v_s->>'name') then
      v_skipped := v_skipped || format('sync %s (a sync of that name exists here)', v_s->>'name');
      continue;
    end if;
    insert into ferry.syncs (name, tenant_id, mapping, mode, schedule, config, paused_at)
    values (v_s->>'name', v_tenant.id, v_s->>'mapping', v_s->>'mode', v_s->>'schedule', v_s->'config',
            (v_s->>'paused_at')::timestamptz);
    if v_s->'state' is not null and jsonb_typeof(v_s->'state') = 'object' then
      insert into ferry.sync_state (sync_name, cursor, cursor_type, last_started_at, last_finished_at, last_outcome,
                                    last_error, last_full_at)
      select v_s->>'name', r.cursor, r.cursor_type, r.last_started_at, r.last_finished_at, r.last_outcome,
             r.last_error, r.last_full_at
      from jsonb_populate_record(null::ferry.sync_state, v_s->'state') r;
    end if;
    v_syncs := v_syncs + 1;
  end loop;
  return jsonb_build_object('mappings', v_mappings, 'syncs', v_syncs, 'skipped', to_jsonb(v_skipped));
end
$$;

-- Ends a restore, in its transaction: the backup's catalog restored, the counts recorded and
-- audited. p_tables: [{"schema", "table", "rows"}], in the order restored.
create or replace function ferry.finish_restore(p_restore bigint, p_tables jsonb, p_catalog jsonb) returns jsonb
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_restore ferry.restores;
  v_tenant  ferry.tenants;
  v_catalog jsonb;
  v_tables  jsonb;
begin
  select * into strict v_restore from ferry.restores where id = p_restore for update;
  select * into strict v_tenant from ferry.tenants where id = v_restore.tenant_id;
  perform ferry.advance_sequences();
  v_catalog := ferry.restore_catalog(v_tenant.slug, p_catalog);
  select coalesce(jsonb_agg(jsonb_build_object(
           'table', format('%I.%I', t->>'schema', t->>'table'),
           'rows', (t->>'rows')::bigint,
           'replaced', (select count(*) from ferry.restore_undo u
                        where u.restore_id = p_restore and u.target_schema = t->>'schema' and u.target_table = t->>'table'))
           order by n), '[]')
  into v_tables
  from jsonb_array_elements(p_tables) with ordinality as x (t, n);
  update ferry.restores set status = 'restored', tables = v_tables where id = p_restore;
  insert into ferry.audit (os_user, command, tenant, outcome, details)
  values (v_restore.os_user, 'tenant restore', v_tenant.slug, 'restored',
          jsonb_build_object('restore', p_restore, 'source', v_restore.source, 'backup_tenant', v_restore.backup_tenant,
                             'replace', v_restore.replaced, 'tables', v_tables, 'catalog', v_catalog));
  return jsonb_build_object('restore', p_restore, 'tables', v_tables, 'catalog', v_catalog);
end
$$;

-- Undoes a restore, in one transaction, as the tenant: the rows it inserted are deleted
-- (children first), then the rows it replaced come back (parents first). A row it inserted
-- that was changed or deleted since (the tenant's rows with its xid are fewer than it wrote)
-- is a conflict: nothing changes unless p_force. Returns {outcome, deleted, restored, conflicts}.
create or replace function ferry.rollback_restore(p_restore bigint, p_force boolean, p_os_user text) returns jsonb
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_restore   ferry.restores;
  v_tenant    ferry.tenants;
  v_table     record;
  v_written   bigint;
  v_found     bigint;
  v_conflicts jsonb := '[]';
  v_deleted   bigint := 0;
  v_restored  bigint := 0;
  v_before    text;
  v_cols      text;
  v_values    text;
begin
  select * into v_restore from ferry.restores where id = p_restore for update;
  if not found then
    raise exception 'no restore %', p_restore using errcode = '42704', hint = 'pgferry audit lists restores';
  end if;
  if v_restore.status = 'rolled_back' then
    return jsonb_build_object('outcome', 'already_rolled_back', 'deleted', 0, 'restored', 0, 'conflicts', '[]'::jsonb);
  end if;
  select * into strict v_tenant from ferry.tenants where id = v_restore.tenant_id;
  perform ferry.lock_row('tenant', v_tenant.slug);
  perform ferry.lock_tenant_targets(v_tenant.slug);

  for v_table in
    select o.*, coalesce((t->>'rows')::bigint, 0) as written
    from ferry.protected_tables_in_order() o
    join jsonb_array_elements(v_restore.tables) t on t->>'table' = format('%I.%I', o.schema_name, o.table_name)
    order by o.ordinal desc
  loop
    v_found := ferry.as_tenant_exec(v_tenant, format('perform from %I.%I as t where t.%I = %L::%s and t.xmin::text::bigint = %s',
      v_table.schema_name, v_table.table_name, v_table.tenant_column, v_tenant.tenant_key, v_table.tenant_type, v_restore.xid));
    if v_found <> v_table.written then
      v_conflicts := v_conflicts || jsonb_build_object('table', format('%I.%I', v_table.schema_name, v_table.table_name),
        'restored', v_table.written, 'unchanged', v_found);
    end if;
  end loop;
  if jsonb_array_length(v_conflicts) > 0 and not p_force then
    insert into ferry.audit (os_user, command, tenant, outcome, details)
    values (p_os_user, 'tenant rollback-restore', v_tenant.slug, 'refused',
            jsonb_build_object('restore', p_restore, 'conflicts', v_conflicts));
    return jsonb_build_object('outcome', 'conflicts', 'deleted', 0, 'restored', 0, 'conflicts', v_conflicts);
  end if;

  for v_table in
    select o.* from ferry.protected_tables_in_order() o
    join jsonb_array_elements(v_restore.tables) t on t->>'table' = format('%I.%I', o.schema_name, o.table_name)
    order by o.ordinal desc
  loop
    v_deleted := v_deleted + ferry.as_tenant_exec(v_tenant, format(
      'delete from %I.%I as t where t.%I = %L::%s and t.xmin::text::bigint = %s',
      v_table.schema_name, v_table.table_name, v_table.tenant_column, v_tenant.tenant_key, v_table.tenant_type,
      v_restore.xid));
  end loop;
  for v_table in select * from ferry.protected_tables_in_order() order by ordinal loop
    continue when not exists (select from ferry.restore_undo u where u.restore_id = p_restore
                              and u.target_schema = v_table.schema_name and u.target_table = v_table.table_name);
    v_before := format('%I.%I', v_tenant.schema_name, 'restore_before_' || p_restore);
    execute format('create unlogged table %s as select before from ferry.restore_undo
                    where restore_id = $1 and target_schema = $2 and target_table = $3', v_before)
    using p_restore, v_table.schema_name, v_table.table_name;
    execute format('grant select on %s to %I', v_before, v_tenant.role_name);
    select string_agg(quote_ident(a.attname), ', ' order by a.attnum),
           string_agg(format('(x.r).%I', a.attname), ', ' order by a.attnum)
    into v_cols, v_values
    from pg_attribute a
    where a.attrelid = format('%I.%I', v_table.schema_name, v_table.table_name)::regclass
      and a.attnum > 0 and not a.attisdropped and a.attgenerated = '';
    v_restored := v_restored + ferry.as_tenant_exec(v_tenant, format(
      'insert into %1$I.%2$I (%3$s) overriding system value select %5$s '
      'from (select jsonb_populate_record(null::%1$I.%2$I, b.before) as r from %4$s as b) as x',
      v_table.schema_name, v_table.table_name, v_cols, v_before, v_values));
    execute format('drop table %s', v_before);
  end loop;

  -- The rows --replace removed are back in their tables: their copies (kept outside row-level
  -- security) go.
  delete from ferry.restore_undo where restore_id = p_restore;
  update ferry.restores set status = 'rolled_back', rolled_back_at = now() where id = p_restore;
  insert into ferry.audit (os_user, command, tenant, outcome, details)
  values (p_os_user, 'tenant rollback-restore', v_tenant.slug, 'rolled_back',
          jsonb_build_object('restore', p_restore, 'deleted', v_deleted, 'restored', v_restored,
                             'forced', p_force, 'conflicts', v_conflicts));
  return jsonb_build_object('outcome', 'rolled_back', 'deleted', v_deleted, 'restored', v_restored, 'conflicts', v_conflicts);
end
$$;
