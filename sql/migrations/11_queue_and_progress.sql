-- Queued loads, their progress and their cancellation (issue 6).
--
-- `pgferry load --queue` registers a load as `queued` and a worker (graphile-worker) runs it
-- later. Whoever watches a load (`pgferry status LOAD --follow`) listens on the channel
-- `pgferry_load`: every change of a load's status, and its progress, is notified there with
-- the load's id as payload. Progress lives in a table of its own so that writing it never
-- waits for the promotion's transaction, which holds the load's row until it commits.

alter table ferry.loads
  drop constraint loads_status_check,
  add constraint loads_status_check
    check (status in ('queued', 'registered', 'staging', 'transforming', 'promoting',
                      'succeeded', 'failed', 'dry_run', 'rolled_back', 'cancelled')),
  add column queued_by text;

-- Kept apart from ferry.loads: a promotion holds its load's row until it commits, and a
-- cancel must not wait for that.
create table ferry.cancel_requests (
  load_id      bigint primary key references ferry.loads on delete cascade,
  requested_at timestamptz not null default now(),
  requested_by text
);
comment on table ferry.cancel_requests is
  '`pgferry cancel` asked these running loads to stop: each stops at its next batch and rolls back';

create table ferry.load_progress (
  load_id    bigint primary key references ferry.loads on delete cascade,
  step       text not null,
  done       bigint not null default 0,
  total      bigint not null default 0,
  rows       bigint not null default 0,
  worker     text,
  updated_at timestamptz not null default now()
);
comment on table ferry.load_progress is
  'where a running load is: its step, how far (done of total: bytes while staging, rows while promoting)';

create function ferry.report_progress(p_load bigint, p_step text, p_done bigint, p_total bigint, p_rows bigint,
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
create function ferry.notify_load_change() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  perform pg_notify('pgferry_load', new.id::text);
  return null;
end
$$;

create trigger loads_notify
after insert or update of status on ferry.loads
for each row execute function ferry.notify_load_change();

-- `pgferry cancel`: a queued load is cancelled at once; a running one is asked to stop (its
-- process listens on `pgferry_cancel` and stops at the next batch, rolling back). Returns what
-- was done: cancelled, requested, or `ended <status>` for a load that had already ended.
create function ferry.request_cancel(p_load bigint, p_os_user text) returns text
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_load ferry.loads;
  v_done text;
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
  -- an interrupted one left. Guarded: a worker may be taking it this very moment.
  update ferry.loads
  set status = 'cancelled', finished_at = now(), error = 'cancelled by ' || coalesce(p_os_user, current_user)
  where id = p_load
    and (status = 'queued' or status in ('registered', 'staging', 'transforming', 'promoting'))
    and not ferry.load_is_claimed(id);
  if found then
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

-- As in 3_loads.sql: `cancelled` is an end too.
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
