-- Cancelling a queued load cannot race a worker that takes it.
--
-- request_cancel (11_queue_and_progress.sql) marked a load nobody ran as cancelled after it
-- saw no claim on it. A worker could take the claim just after that look, and read the status
-- before the cancel committed: it then ran the load, and its first status update, waiting for
-- the cancel's row lock, overwrote 'cancelled' (seen once in CI: a load cancelled while queued
-- ended 'succeeded'). The cancel now holds the claim's lock itself, until it commits: a worker
-- then cannot claim the load in between, and finds it cancelled when it can. A load claimed
-- first gets a cancel request, as a running one does.
create or replace function ferry.request_cancel(p_load bigint, p_os_user text) returns text
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_load ferry.loads;
  v_done text;
  v_cancelled boolean := false;
begin
  -- Not locked: a running promotion holds the row until it commits.
  select * into v_load from ferry.loads where id = p_load;
  if not found then
    raise exception 'no load %', p_load using errcode = '42704', hint = 'pgferry loads lists them';
  end if;
  if v_load.status in ('succeeded', 'failed', 'dry_run', 'rolled_back', 'cancelled') then
    return 'ended ' || v_load.status;
  end if;
  -- Nobody runs it (queued, or interrupted): nothing to stop but the record, and the staging
  -- an interrupted one left. The claim's lock, held to the end of this transaction, keeps
  -- any worker from taking the load meanwhile.
  if pg_try_advisory_xact_lock(ferry.load_lock_class(), p_load::integer) then
    update ferry.loads
    set status = 'cancelled', finished_at = now(), error = 'cancelled by ' || coalesce(p_os_user, current_user)
    where id = p_load
      and status in ('queued', 'registered', 'staging', 'transforming', 'promoting');
    v_cancelled := found;
  end if;
  if v_cancelled then
    perform ferry.cleanup_load(p_load);
    v_done := 'cancelled';
  else
    insert into ferry.cancel_requests (load_id, requested_by) values (p_load, p_os_user)
    on conflict (load_id) do nothing;
    perform pg_notify('pgferry_cancel', p_load::text);
    v_done := 'requested';
  end if;
  insert into ferry.audit (os_user, command, tenant, load_id, outcome)
  values (p_os_user, 'cancel', (ferry.load_tenant(p_load)).slug, p_load, v_done);
  return v_done;
end
$$;
