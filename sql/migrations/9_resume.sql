-- Resuming an interrupted load (issue 5): every step can run again after a crash.
--
-- Staging commits in chunks, each with its checkpoint; with parallel streams a stream may
-- have committed rows past the last checkpoint, so resuming drops those first. The transform
-- commits whole: run again (a crash after its commit, before the promotion's), it starts
-- from empty tables instead of adding to what the first run left. The promotion is one
-- transaction, so it either happened (status succeeded) or left no trace.

-- Drops what was staged after the load's checkpoint; returns the checkpoint to resume from.
create function ferry.resume_staging(p_load bigint)
returns table (checkpoint_line bigint, rows_read bigint, rows_staged bigint)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_load   ferry.loads;
  v_tenant ferry.tenants := ferry.load_tenant(p_load);
begin
  select * into strict v_load from ferry.loads where id = p_load;
  execute format('delete from %s where _line > $1', ferry.quoted_object(v_tenant.schema_name, 'stage', p_load))
  using v_load.checkpoint_line;
  delete from ferry.rejects r where r.load_id = p_load and r.step = 'parse' and r.line > v_load.checkpoint_line;
  return query select v_load.checkpoint_line, v_load.rows_read, v_load.rows_staged;
end
$$;

-- As in 5_steps.sql, starting from empty tables.
create or replace function ferry.transform(p_load bigint) returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant ferry.tenants := ferry.load_tenant(p_load);
  v_rows   bigint;
begin
  update ferry.loads set status = 'transforming' where id = p_load;
  execute format('truncate %s, %s, %s',
                 ferry.quoted_object(v_tenant.schema_name, 'mapped', p_load),
                 ferry.quoted_object(v_tenant.schema_name, 'work', p_load),
                 ferry.quoted_object(v_tenant.schema_name, 'rejects', p_load));
  delete from ferry.rejects where load_id = p_load and step = 'transform';
  execute format('select %s()', ferry.tenant_function(p_load, 'transform', '')::oid::regproc);
  execute format('analyze %s', ferry.quoted_object(v_tenant.schema_name, 'work', p_load));
  perform ferry.collect_rejects(p_load, 'transform');
  execute format('select count(*) from %s', ferry.quoted_object(v_tenant.schema_name, 'work', p_load))
  into v_rows;
  return v_rows;
end
$$;
