-- Staging: the load's UNLOGGED table (no WAL written for it) that the loader's COPY streams
-- fill with the source's rows, as text, in chunks that each commit with a checkpoint; and
-- what a retry or `pgferry resume` needs to go on from the last checkpoint.
--
-- A crash of the server (killed, the machine lost) empties every UNLOGGED table in recovery;
-- a clean restart keeps them. A staging table then holds fewer rows than its checkpoint
-- counts, and the work table none: the load, retried or resumed, stages its source again
-- from the first line (staging_lost, resume_staging) and transforms it again, rather than
-- failing its counts check.

-- Creates the load's staging table (again, if it exists): the source's columns, all text,
-- plus the source line number, _line. The load's status becomes `staging`. Returns the table's
-- qualified name.
create or replace function ferry.prepare_staging(p_load bigint, p_columns text[]) returns text
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_load   ferry.loads;
  v_tenant ferry.tenants;
  v_cols   text;
begin
  select * into strict v_load from ferry.loads where id = p_load;
  select * into strict v_tenant from ferry.tenants where id = v_load.tenant_id;
  if cardinality(p_columns) = 0 then
    raise exception 'the source has no columns' using errcode = '22023';
  end if;
  if (select count(distinct c) from unnest(p_columns) c) <> cardinality(p_columns)
     or '_line' = any (p_columns) then
    raise exception 'staging column names must be unique and not _line' using errcode = '42701';
  end if;

  select string_agg(format('%I text', c), E',\n  ' order by o)
  into v_cols
  from unnest(p_columns) with ordinality as u(c, o);

  execute format('drop table if exists %I.%I', v_tenant.schema_name, ferry.load_object(p_load, 'stage'));
  execute format(E'create unlogged table %I.%I (\n  _line bigint not null,\n  %s\n)',
                 v_tenant.schema_name, ferry.load_object(p_load, 'stage'), v_cols);
  -- The loader owns the tables it writes to (a tenant could otherwise put a trigger on them);
  -- the tenant may only read this one.
  execute format('grant select on %I.%I to %I',
                 v_tenant.schema_name, ferry.load_object(p_load, 'stage'), v_tenant.role_name);

  update ferry.loads
  set staging_schema = v_tenant.schema_name, columns = p_columns, status = 'staging'
  where id = p_load;
  return format('%I.%I', v_tenant.schema_name, ferry.load_object(p_load, 'stage'));
end
$$;

-- Commits a chunk of staging: the last line whose rows are now in the staging table.
create or replace function ferry.checkpoint(p_load bigint, p_line bigint, p_read bigint, p_staged bigint)
returns void
language sql
set search_path = pg_catalog, pg_temp
as $$
  update ferry.loads
  set checkpoint_line = p_line, rows_read = p_read, rows_staged = p_staged
  where id = p_load
$$;

-- Records one reject of a load: the promotion's rejects (staging inserts its parse rejects
-- in bulk, with its chunks).
create or replace function ferry.add_reject(
  p_load    bigint,
  p_step    text,
  p_line    bigint,
  p_column  text,
  p_value   text,
  p_rule    text,
  p_message text,
  p_raw     text default null
) returns void
language sql
set search_path = pg_catalog, pg_temp
as $$
  insert into ferry.rejects (load_id, step, line, column_name, value, rule, message, raw)
  values (p_load, p_step, p_line, p_column, p_value, p_rule, p_message, p_raw)
$$;

-- Where staging goes on from: drops the rows and parse rejects past the checkpoint (a stream
-- of a parallel staging may have committed rows the checkpoint does not count), and returns
-- the checkpoint. Staging that a crash emptied starts again from the first line, its parse
-- rejects and checkpoint gone with it.
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

-- Whether the load's staging table lost rows its checkpoint counts: a crash reset it. (Rows
-- past the checkpoint may be there: parallel streams commit before the checkpoint does.)
create or replace function ferry.staging_lost(p_load bigint) returns boolean
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
