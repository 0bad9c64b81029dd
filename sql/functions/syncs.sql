-- Syncs: what pgferry.yaml declares for each sync, and the end of a sync's run. A run is a
-- load whose options name its sync; the loader ends it with finish_sync in the transaction
-- that promotes it, so that the cursor moves, and mirror's deletes happen, only with the rows
-- promoted.

-- Records what pgferry.yaml declares for a sync (before each run, and by `pgferry pause` and
-- `unpause`); updated_at moves only when the declaration changed. Creates its sync_state row
-- the first time.
create or replace function ferry.declare_sync(p_name text, p_tenant text, p_mapping text, p_mode text, p_schedule text,
                                   p_config jsonb)
returns ferry.syncs
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_sync ferry.syncs;
begin
  insert into ferry.syncs as s (name, tenant_id, mapping, mode, schedule, config)
  values (p_name, (ferry.tenant(p_tenant)).id, p_mapping, p_mode, p_schedule, p_config)
  on conflict (name) do update
  set tenant_id = excluded.tenant_id, mapping = excluded.mapping, mode = excluded.mode,
      schedule = excluded.schedule, config = excluded.config,
      updated_at = case when s.config is distinct from excluded.config then now() else s.updated_at end
  returning * into v_sync;
  insert into ferry.sync_state (sync_name) values (p_name) on conflict do nothing;
  return v_sync;
end
$$;

-- Mirror mode, on a full pull: the tenant's rows of the target whose key the pull did not
-- bring are deleted, or with p_soft (a boolean or date/timestamp column of the target)
-- marked deleted. It runs as the tenant, inside the promoting transaction, through a
-- function compiled for the load; the before-images go to the undo log (action 'delete', or
-- 'update' for a soft delete), so a rollback of the load brings the rows back. A soft delete
-- sets the column to true, or now(), on rows not marked already.
-- A pull with rejected rows deletes nothing: the keys of those rows cannot be told, and a
-- row the source still has must not be lost because one of its values was bad.
create or replace function ferry.mirror_absent(p_load bigint, p_soft text) returns jsonb
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant   ferry.tenants := ferry.load_tenant(p_load);
  v_map      ferry.mappings;
  v_pt       ferry.protected_tables;
  v_target   text;
  v_work     text;
  v_undo     text;
  v_keys     text[];
  v_absent   text;
  v_key      text;
  v_key_o    text;
  v_tenant_value text;
  v_soft_type text;
  v_body     text;
  v_rejected bigint;
  v_deleted  bigint;
  v_tag      text := '$pgferry_' || replace(gen_random_uuid()::text, '-', '') || '$';
begin
  select m.* into strict v_map from ferry.mappings m join ferry.loads l on l.mapping_id = m.id where l.id = p_load;
  select * into strict v_pt from ferry.protected_tables
  where schema_name = v_map.target_schema and table_name = v_map.target_table;
  select count(*) into v_rejected
  from ferry.rejects r
  where r.load_id = p_load and (r.step = 'parse' or (r.step = 'transform' and r.rule <> 'duplicate'));
  if v_rejected > 0 then
    return jsonb_build_object('deleted', 0, 'kept',
      format('%s row(s) of the full pull were rejected: no row absent from it was deleted', v_rejected));
  end if;

  v_target := format('%I.%I', v_map.target_schema, v_map.target_table);
  v_work := ferry.quoted_object(v_tenant.schema_name, 'work', p_load);
  v_undo := ferry.quoted_object(v_tenant.schema_name, 'mirror', p_load);
  v_keys := v_map.key_columns;
  v_tenant_value := format('%L::%s', v_tenant.tenant_key, v_pt.tenant_type);
  -- A row of the tenant (alias o) whose key no pulled row has.
  v_absent := format('o.%I = %s and not exists (select from %s as w where %s)',
                     v_pt.tenant_column, v_tenant_value, v_work,
                     (select string_agg(format('w.%I = o.%I', k, k), ' and ') from unnest(v_keys) k));
  v_key := format('jsonb_build_object(%s)', (select string_agg(format('%L, t.%I', k, k), ', ') from unnest(v_keys) k));
  v_key_o := format('jsonb_build_object(%s)', (select string_agg(format('%L, o.%I', k, k), ', ') from unnest(v_keys) k));

  if p_soft is null then
    v_body := format(
      E'  with gone as (\n'
      '    delete from %1$s as o where %2$s\n'
      '    returning %3$s as key, to_jsonb(o) as before\n'
      '  )\n'
      '  insert into %4$s (action, key, before, xid) select %5$L, key, before, 0 from gone',
      v_target, v_absent, v_key_o, v_undo, 'delete');
  else
    select format_type(a.atttypid, a.atttypmod) into v_soft_type
    from pg_attribute a
    where a.attrelid = v_target::regclass and a.attname = p_soft and a.attnum > 0 and not a.attisdropped;
    if v_soft_type is null then
      raise exception 'soft_delete: %s has no column %', v_target, p_soft using errcode = '42703';
    end if;
    if p_soft = any (v_keys) or p_soft = v_pt.tenant_column then
      raise exception 'soft_delete: % is a key of %', p_soft, v_target using errcode = '22023';
    end if;
    if v_soft_type not in ('boolean', 'date', 'timestamp without time zone', 'timestamp with time zone') then
      raise exception 'soft_delete: column % of % is %, not boolean, date or a timestamp', p_soft, v_target, v_soft_type
        using errcode = '42804';
    end if;
    v_body := format(
      E'  with gone as (\n'
      '    update %1$s as t set %2$I = %3$s\n'
      '    from (select o.ctid as id, to_jsonb(o) as before from %1$s as o where %4$s and %5$s) as o\n'
      '    where t.ctid = o.id\n'
      '    returning %6$s as key, o.before, t.xmin::text::bigint as xid\n'
      '  )\n'
      '  insert into %7$s (action, key, before, xid) select %8$L, key, before, xid from gone',
      v_target, p_soft,
      case when v_soft_type = 'boolean' then 'true' else 'now()' end,
      v_absent,
      format(case when v_soft_type = 'boolean' then 'o.%I is not true' else 'o.%I is null' end, p_soft),
      v_key, v_undo, 'update');
  end if;

  execute format('drop table if exists %s', v_undo);
  execute format('create unlogged table %s (action text not null, key jsonb not null, before jsonb, xid bigint not null)', v_undo);
  execute format('grant select, insert on %s to %I', v_undo, v_tenant.role_name);
  execute format('drop function if exists %I.%I()', v_tenant.schema_name, 'mirror_' || p_load);
  execute format(
    E'create function %I.%I() returns bigint\n'
    'language plpgsql security definer set search_path = public, pg_temp\n'
    'as %s\n'
    'declare\n'
    '  v_rows bigint;\n'
    'begin\n'
    '%s;\n'
    '  get diagnostics v_rows = row_count;\n'
    '  return v_rows;\n'
    'end\n'
    '%s',
    v_tenant.schema_name, 'mirror_' || p_load, v_tag, v_body, v_tag);
  execute format('alter function %I.%I() owner to %I', v_tenant.schema_name, 'mirror_' || p_load, v_tenant.role_name);
  perform ferry.restrict_to_loader(format('%I.%I()', v_tenant.schema_name, 'mirror_' || p_load), v_tenant);
  execute format('select %s()', ferry.tenant_function(p_load, 'mirror', '')::oid::regproc) into v_deleted;
  execute format('drop function %I.%I()', v_tenant.schema_name, 'mirror_' || p_load);

  execute format(
    'insert into ferry.undo (load_id, target_schema, target_table, action, key, before, xid)
     select $1, $2, $3, action, key, before, xid from %s', v_undo)
  using p_load, v_map.target_schema, v_map.target_table;
  execute format('drop table %s', v_undo);
  update ferry.loads set deleted = v_deleted where id = p_load;
  return jsonb_build_object('deleted', v_deleted, 'soft', p_soft is not null);
end
$$;

-- Called by the loader inside the transaction that promotes a sync's load, after verify:
-- moves the sync's cursor to the largest cursor value the load pulled (never backwards),
-- runs mirror's deletes on a full pull, and records the run. Returns {cursor}, with mirror's
-- {deleted, soft} or {deleted, kept} on a full pull. The sync's state row is locked first:
-- runs of one sync finish one after the other.
create or replace function ferry.finish_sync(p_load bigint) returns jsonb
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_load    ferry.loads;
  v_sync    jsonb;
  v_tenant  ferry.tenants := ferry.load_tenant(p_load);
  v_state   ferry.sync_state;
  v_type    text;
  v_max     text;
  v_forward boolean;
  v_result  jsonb := '{}';
begin
  select * into strict v_load from ferry.loads where id = p_load;
  v_sync := v_load.options -> 'sync';
  if v_sync is null then
    raise exception 'load % is not the run of a sync', p_load using errcode = '22023';
  end if;
  select * into v_state from ferry.sync_state where sync_name = v_sync ->> 'name' for update;
  if not found then
    raise exception 'no sync %', v_sync ->> 'name' using errcode = '42704';
  end if;
  v_type := v_sync ->> 'cursorType';
  if v_sync ->> 'cursorColumn' is not null then
    if v_type is null or v_type not in ('timestamptz', 'timestamp', 'date', 'numeric', 'text') then
      raise exception 'sync %: cursor type % is not one pgferry compares', v_sync ->> 'name', v_type
        using errcode = '22023';
    end if;
    execute format('select s.%1$I from %2$s as s where s.%1$I is not null order by s.%1$I::%3$s desc limit 1',
                   v_sync ->> 'cursorColumn', ferry.quoted_object(v_tenant.schema_name, 'stage', p_load), v_type)
    into v_max;
    -- Never backwards (a full pull of a source whose newest rows were deleted).
    if v_max is not null and v_state.cursor is not null and v_state.cursor_type = v_type then
      execute format('select $2::%1$s >= $1::%1$s', v_type) into v_forward using v_state.cursor, v_max;
      if not v_forward then
        v_max := v_state.cursor;
      end if;
    end if;
  end if;
  if v_sync ->> 'mode' = 'mirror' and coalesce((v_sync ->> 'full')::boolean, false) then
    v_result := ferry.mirror_absent(p_load, v_sync ->> 'softDelete');
  end if;
  update ferry.sync_state
  set cursor = coalesce(v_max, cursor),
      cursor_type = coalesce(v_type, cursor_type),
      last_load_id = p_load,
      last_finished_at = now(),
      last_outcome = 'succeeded',
      last_error = v_result ->> 'kept',
      last_full_at = case when coalesce((v_sync ->> 'full')::boolean, false) then now() else last_full_at end
  where sync_name = v_sync ->> 'name';
  return v_result || jsonb_build_object('cursor', coalesce(v_max, v_state.cursor));
end
$$;
