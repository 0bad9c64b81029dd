-- Loads in the catalog (ferry.loads), as the loader keeps them: registration, and the skip of
-- a file already loaded; status and step timings; progress and changes of status, notified to
-- whoever follows a load; cancelling; the names of a load's tables and functions in its
-- tenant's schema.

-- The last load of this file that succeeded, for this tenant and this mapping version (a
-- changed mapping may well give other rows, so it loads the file again).
create or replace function ferry.previous_load_of_file(p_tenant text, p_mapping_id bigint, p_sha256 text)
returns ferry.loads
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select l.*
  from ferry.loads l
  join ferry.tenants t on t.id = l.tenant_id
  where t.slug = p_tenant and l.mapping_id = p_mapping_id and l.file_sha256 = p_sha256
    and l.status = 'succeeded'
  order by l.id desc
  limit 1
$$;

-- Records a new load (status `registered`) of a source for a tenant and a mapping version,
-- and audits it. Returns the load's row.
--
-- Each file once, race-free: a file's load (a sha256, neither forced nor a dry run) takes a
-- transaction lock on the file for its tenant and mapping version, then looks for a load of the
-- same content that succeeded or is on its way (queued, registered, or running under a claim).
-- Finding one raises SQLSTATE PF001, its id in DETAIL: the caller reports the file skipped.
-- One on its way that nobody runs any more (interrupted) raises PF002: resume it or cancel it,
-- or a second copy of the file could be promoted beside it. A load only registered is claimed
-- by its process a moment later: unclaimed for 30 seconds, that process is gone.
create or replace function ferry.register_load(
  p_tenant     text,
  p_mapping_id bigint,
  p_source     text,
  p_sha256     text,
  p_bytes      bigint,
  p_format     text,
  p_options    jsonb,
  p_os_user    text
) returns ferry.loads
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant_id bigint := (ferry.tenant(p_tenant)).id;
  v_load ferry.loads;
  v_other ferry.loads;
begin
  if p_sha256 is not null
     and not coalesce((p_options ->> 'force')::boolean, false)
     and not coalesce((p_options ->> 'dryRun')::boolean, false) then
    perform pg_advisory_xact_lock(ferry.lock_key('file', v_tenant_id || ':' || p_mapping_id || ':' || p_sha256));
    select l.* into v_other
    from ferry.loads l
    where l.tenant_id = v_tenant_id and l.mapping_id = p_mapping_id and l.file_sha256 = p_sha256
      and l.status in ('succeeded', 'queued', 'registered', 'staging', 'transforming', 'promoting')
      and not coalesce((l.options ->> 'dryRun')::boolean, false)
    order by (l.status = 'succeeded') desc, l.id desc
    limit 1;
    if found then
      if (v_other.status in ('staging', 'transforming', 'promoting')
          or (v_other.status = 'registered' and v_other.created_at < now() - interval '30 seconds'))
         and not ferry.load_is_claimed(v_other.id) then
        raise exception 'load % of the same file was interrupted (%): resume it, or cancel it and load again',
                        v_other.id, v_other.status
          using errcode = 'PF002', detail = v_other.id::text,
                hint = format('pgferry resume %s, or pgferry cancel %s', v_other.id, v_other.id);
      end if;
      raise exception 'load % % this file', v_other.id,
                      case when v_other.status = 'succeeded' then 'already loaded' else 'is loading' end
        using errcode = 'PF001', detail = v_other.id::text;
    end if;
  end if;
  insert into ferry.loads (tenant_id, mapping_id, source, file_sha256, file_bytes, format, options, os_user)
  values (v_tenant_id, p_mapping_id, p_source, p_sha256, p_bytes, p_format,
          coalesce(p_options, '{}'), p_os_user)
  returning * into v_load;
  insert into ferry.audit (os_user, command, tenant, load_id, outcome, details)
  values (p_os_user, 'load', p_tenant, v_load.id, 'registered',
          jsonb_build_object('source', p_source, 'mapping_id', p_mapping_id));
  return v_load;
end
$$;

-- Sets a load's status, and its error when one is given. An end (succeeded, failed, dry_run,
-- cancelled) stamps finished_at; any other status clears it.
create or replace function ferry.set_status(p_load bigint, p_status text, p_error text default null)
returns void
language sql
set search_path = pg_catalog, pg_temp
as $$
  update ferry.loads
  set status = p_status,
      error = coalesce(p_error, error),
      finished_at = case when p_status in ('succeeded', 'failed', 'dry_run', 'cancelled') then now() end
  where id = p_load
$$;

-- Adds a step's duration, in whole milliseconds, to the load's timings.
create or replace function ferry.record_timing(p_load bigint, p_step text, p_ms numeric)
returns void
language sql
set search_path = pg_catalog, pg_temp
as $$
  update ferry.loads
  set timings = timings || jsonb_build_object(p_step, round(p_ms))
  where id = p_load
$$;

-- The name of a load's table or function of a kind inside the tenant's schema: stage_42.
create or replace function ferry.load_object(p_load bigint, p_kind text) returns text
language sql immutable
set search_path = pg_catalog, pg_temp
as $$ select p_kind || '_' || p_load $$;

-- A load's table or function of a kind, qualified with the tenant's schema and quoted as an
-- identifier (ferry_t_acme.stage_42): what the steps splice into their dynamic SQL.
create or replace function ferry.quoted_object(p_schema name, p_kind text, p_load bigint) returns text
language sql immutable
set search_path = pg_catalog, pg_temp
as $$ select format('%I.%I', p_schema, p_kind || '_' || p_load) $$;

-- The status to show: `interrupted` for a load in progress that no process holds (its claim,
-- claims.sql).
create or replace function ferry.load_status(p_load ferry.loads) returns text
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select case
    when p_load.status in ('registered', 'staging', 'transforming', 'promoting')
         and not ferry.load_is_claimed(p_load.id)
    then 'interrupted'
    else p_load.status
  end
$$;

-- A running load's progress (its step, done of total, rows), one row per load, and a NOTIFY
-- on `pgferry_load` for `pgferry status --follow`. The loader writes it on the connection that
-- holds the load's claim, outside the steps' transactions, so that it is seen as it happens.
create or replace function ferry.report_progress(p_load bigint, p_step text, p_done bigint, p_total bigint, p_rows bigint,
                                      p_worker text default null)
returns void
language sql
set search_path = pg_catalog, pg_temp
as $$
  insert into ferry.load_progress as p (load_id, step, done, total, rows, worker)
  values (p_load, p_step, p_done, p_total, p_rows, p_worker)
  on conflict (load_id) do update
  set step = excluded.step, done = excluded.done, total = excluded.total, rows = excluded.rows,
      worker = coalesce(excluded.worker, p.worker), updated_at = now();
  select pg_notify('pgferry_load', p_load::text);
$$;

-- A change of status is news for whoever follows the load (sent when its transaction commits).
create or replace function ferry.notify_load_change() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  perform pg_notify('pgferry_load', new.id::text);
  return null;
end
$$;
create or replace trigger loads_notify
after insert or update of status on ferry.loads
for each row execute function ferry.notify_load_change();

-- `pgferry cancel`: a load nobody runs (queued, or interrupted) is cancelled at once, and its
-- staging dropped; a running one gets a cancel request (a row in ferry.cancel_requests and a
-- NOTIFY on `pgferry_cancel`) and stops at its next batch. Returns 'cancelled', 'requested' or
-- 'ended <status>'; audited.
--
-- Whether anybody runs the load is decided by taking its claim (claims.sql) until this
-- transaction ends, not by looking for one: a worker could take the claim just after such a
-- look and run the load, its first status update overwriting 'cancelled' once the cancel
-- committed. Holding the claim's lock, the cancel keeps any worker from claiming the load
-- until it commits, and the worker then finds it cancelled. A load claimed first gets a
-- request, as a running one does.
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
  if pg_try_advisory_xact_lock(ferry.load_claim_key(p_load)) then
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
