-- Verify: a load's counts, from ferry.rejects and its staging table, and the check that every
-- row read is accounted for.

-- Writes a load's reject counts onto its row: parse rejects, rejected lines (a line counts
-- once, however many of its values were rejected) and duplicates (ferry.duplicate_count). The
-- loader reads them after the transform, to apply the reject and duplicate thresholds before
-- promoting anything.
create or replace function ferry.count_rejects(p_load bigint) returns void
language sql
set search_path = pg_catalog, pg_temp
as $$
  update ferry.loads l
  set parse_rejects = r.parse, rows_rejected = r.rejected, duplicates = r.dups
  from (
    select count(*) filter (where step = 'parse') as parse,
           count(distinct line) filter (where step <> 'parse' and rule <> 'duplicate') as rejected,
           ferry.duplicate_count(p_load) as dups
    from ferry.rejects
    where load_id = p_load
  ) as r
  where l.id = p_load
$$;

-- Every input row is accounted for, or the load fails:
--   read     = staged + parse rejects
--   staged   = promoted + duplicates + rejected
--   promoted = inserted + updated + unchanged
-- and the staging table holds as many rows as the loader says it staged. It runs in the
-- promotion's transaction, so a load that fails it promotes nothing. Writes the reject counts
-- onto the load, as count_rejects does, and returns the load's row.
create or replace function ferry.verify_load(p_load bigint) returns ferry.loads
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_load     ferry.loads;
  v_tenant   ferry.tenants := ferry.load_tenant(p_load);
  v_in_table bigint;
  v_parse    bigint;
  v_rejected bigint;
  v_dups     bigint;
  v_problems text[] := '{}';
begin
  select * into strict v_load from ferry.loads where id = p_load;
  execute format('select count(*) from %s', ferry.quoted_object(v_tenant.schema_name, 'stage', p_load))
  into v_in_table;
  select count(*) filter (where step = 'parse'),
         count(distinct line) filter (where step <> 'parse' and rule <> 'duplicate'),
         ferry.duplicate_count(p_load)
  into v_parse, v_rejected, v_dups
  from ferry.rejects
  where load_id = p_load;

  if v_in_table <> v_load.rows_staged then
    v_problems := v_problems || format('the staging table holds %s rows, the loader sent %s', v_in_table, v_load.rows_staged);
  end if;
  if v_load.rows_read <> v_load.rows_staged + v_parse then
    v_problems := v_problems || format('read %s <> staged %s + parse rejects %s', v_load.rows_read, v_load.rows_staged, v_parse);
  end if;
  if v_load.rows_staged <> v_load.inserted + v_load.updated + v_load.unchanged + v_dups + v_rejected then
    v_problems := v_problems || format('staged %s <> promoted %s + duplicates %s + rejected %s',
      v_load.rows_staged, v_load.inserted + v_load.updated + v_load.unchanged, v_dups, v_rejected);
  end if;

  update ferry.loads
  set parse_rejects = v_parse, rows_rejected = v_rejected, duplicates = v_dups
  where id = p_load
  returning * into v_load;

  if cardinality(v_problems) > 0 then
    raise exception 'counts do not reconcile for load %: %', p_load, array_to_string(v_problems, '; ')
      using errcode = 'P0001';
  end if;
  return v_load;
end
$$;
