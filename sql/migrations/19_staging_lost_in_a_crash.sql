-- A load resumed after a server crash stages its source again from the first line.
--
-- A crash (the server killed, the machine lost) empties every UNLOGGED table: PostgreSQL resets
-- them in recovery. A load's staging table then holds fewer rows than its checkpoint counts,
-- and its work table none. Before this, a step tried again after such a crash went on from the
-- checkpoint (or, after staging, from the emptied tables), and the counts check failed the load
-- ("the staging table holds 0 rows, the loader sent 150000"): nothing was half-applied, but the
-- load had to be run again by hand. A clean restart keeps UNLOGGED tables, and changes nothing.

-- Whether the load's staging table lost rows its checkpoint counts: a crash reset it. (Rows
-- past the checkpoint may be there: parallel streams commit before the checkpoint does.)
create function ferry.staging_lost(p_load bigint) returns boolean
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_load   ferry.loads;
  v_tenant ferry.tenants := ferry.load_tenant(p_load);
  v_stage  text := ferry.quoted_object(v_tenant.schema_name, 'stage', p_load);
  v_rows   bigint;
begin
  select * into strict v_load from ferry.loads where id = p_load;
  if v_load.rows_staged = 0 or to_regclass(v_stage) is null then
    return false;
  end if;
  execute format('select count(*) from %s where _line <= $1', v_stage)
  into v_rows
  using v_load.checkpoint_line;
  return v_rows < v_load.rows_staged;
end
$$;

comment on function ferry.staging_lost(bigint) is
  'Whether a server crash emptied the load''s UNLOGGED staging table: it holds fewer rows up to the checkpoint than the checkpoint counts.';

-- resume_staging: as in 9_resume.sql, but staging that a crash emptied starts again from the
-- first line, its parse rejects and checkpoint gone with it.
create or replace function ferry.resume_staging(p_load bigint)
returns table (checkpoint_line bigint, rows_read bigint, rows_staged bigint)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_load   ferry.loads;
  v_tenant ferry.tenants := ferry.load_tenant(p_load);
  v_stage  text := ferry.quoted_object(v_tenant.schema_name, 'stage', p_load);
begin
  if ferry.staging_lost(p_load) then
    execute format('truncate %s', v_stage);
    delete from ferry.rejects r where r.load_id = p_load and r.step = 'parse';
    perform ferry.checkpoint(p_load, 0, 0, 0);
  end if;
  select * into strict v_load from ferry.loads where id = p_load;
  execute format('delete from %s where _line > $1', v_stage)
  using v_load.checkpoint_line;
  delete from ferry.rejects r where r.load_id = p_load and r.step = 'parse' and r.line > v_load.checkpoint_line;
  return query select v_load.checkpoint_line, v_load.rows_read, v_load.rows_staged;
end
$$;
