-- Mappings: the versions of a mapping file, registered by the loader before each load.

-- A mapping version: the same content (sha256) is the same version; new content is the next
-- one. Its target must be a protected table. Registrations of one mapping take turns (a lock
-- held until the transaction ends): two loads registering the same new content at once would
-- otherwise both find no row for it, and both insert it as the next version.
create or replace function ferry.register_mapping(
  p_name        text,
  p_source      text,
  p_sha256      text,
  p_source_path text,
  p_target      text,
  p_key_columns text[],
  p_on_conflict text,
  p_duplicates  text,
  p_checks      jsonb,
  p_select_sql  text,
  p_select_line integer
) returns ferry.mappings
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_mapping ferry.mappings;
  v_target  regclass := to_regclass(p_target);
  v_schema  name;
  v_table   name;
begin
  perform ferry.lock_row('mapping', p_name);
  if v_target is null then
    raise exception 'target table % does not exist', p_target using errcode = '42P01';
  end if;
  select n.nspname, c.relname into v_schema, v_table
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where c.oid = v_target;
  if not exists (select from ferry.protected_tables where schema_name = v_schema and table_name = v_table) then
    raise exception 'target table %.% is not protected', v_schema, v_table
      using errcode = '55000',
            hint = format('run: pgferry tenant protect %s.%s', v_schema, v_table);
  end if;

  select * into v_mapping from ferry.mappings where name = p_name and sha256 = p_sha256;
  if found then
    return v_mapping;
  end if;
  insert into ferry.mappings (name, version, sha256, source, source_path, target_schema, target_table,
                              key_columns, on_conflict, duplicates, checks, select_sql, select_line)
  values (p_name,
          coalesce((select max(version) from ferry.mappings where name = p_name), 0) + 1,
          p_sha256, p_source, p_source_path, v_schema, v_table,
          p_key_columns, p_on_conflict, p_duplicates, p_checks, p_select_sql, p_select_line)
  returning * into v_mapping;
  return v_mapping;
end
$$;

-- A dry run (validate, load --dry-run) leaves no mapping version behind: the version it
-- registered, new for it, goes again once its load is gone, unless a load uses it by then.
-- Returns whether it went.
create or replace function ferry.forget_unused_mapping(p_mapping_id bigint) returns boolean
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_name text;
begin
  select name into v_name from ferry.mappings where id = p_mapping_id;
  if not found then
    return false;
  end if;
  perform ferry.lock_row('mapping', v_name);
  delete from ferry.mappings m
  where m.id = p_mapping_id
    and not exists (select from ferry.loads l where l.mapping_id = m.id);
  return found;
end
$$;
