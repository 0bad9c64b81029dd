-- Plans (issue 6): an ordered set of loads and syncs with dependencies, run by the worker.
--
-- `pgferry plan run PLAN.yaml` records a run and its steps, then queues the steps that wait
-- for nothing. Each step is a job of its own (graphile-worker task pgferry_plan_step); when
-- it ends, ferry.finish_plan_step() records its outcome and says which steps are now ready,
-- in the transaction that also queues their jobs. Independent branches run side by side;
-- the dependents of a failed step are skipped, transitively. The plan file is read and
-- checked whole before anything runs: what a step is to do is kept in its spec, so a run
-- does what was validated even if the file changes meanwhile.

create table ferry.plan_runs (
  id          bigint generated always as identity primary key,
  plan_path   text not null,
  name        text not null,
  dry_run     boolean not null default false,
  status      text not null default 'running' check (status in ('running', 'succeeded', 'failed')),
  created_at  timestamptz not null default now(),
  finished_at timestamptz,
  os_user     text
);
comment on table ferry.plan_runs is 'runs of plans (pgferry plan run): failed when any step failed';

create table ferry.plan_steps (
  run_id      bigint not null references ferry.plan_runs on delete cascade,
  name        text not null,
  -- The plan's steps in an order where each comes after its prerequisites (for display).
  position    integer not null,
  kind        text not null check (kind in ('load', 'sync')),
  spec        jsonb not null,
  after       text[] not null default '{}',
  status      text not null default 'pending'
              check (status in ('pending', 'queued', 'running', 'succeeded', 'failed', 'skipped')),
  -- Not a reference: a dry run's load leaves no row, and old loads are pruned; the id stays.
  load_id     bigint,
  -- The load's counts as the step ended (a dry run's would-be counts live only here).
  counts      jsonb,
  error       text,
  started_at  timestamptz,
  finished_at timestamptz,
  primary key (run_id, name)
);
comment on table ferry.plan_steps is
  'steps of a plan run: pending (waits for its prerequisites), queued (a job is waiting for a worker), running, then succeeded, failed or skipped (a prerequisite failed)';
comment on column ferry.plan_steps.after is 'names of the steps of the same run that must succeed first';

-- A step ended: records its outcome (succeeded or failed), skips the dependents of a failed
-- step (transitively), marks `queued` and returns the steps now ready (every prerequisite
-- succeeded), and ends the run when no step is left to run. The run's row is locked first:
-- two steps ending at once are recorded one after the other, so a dependent of both is
-- found ready exactly once, by the second. The caller queues the returned steps' jobs in
-- the same transaction. A step already recorded (its job tried again after a crash) changes
-- nothing and returns no step.
create function ferry.finish_plan_step(p_run bigint, p_step text, p_status text, p_load bigint,
                                       p_counts jsonb, p_error text)
returns setof text
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  if p_status not in ('succeeded', 'failed') then
    raise exception 'a step ends succeeded or failed, not %', p_status using errcode = '22023';
  end if;
  perform from ferry.plan_runs where id = p_run for update;
  if not found then
    raise exception 'no plan run %', p_run using errcode = '42704';
  end if;
  update ferry.plan_steps
  set status = p_status, load_id = coalesce(p_load, load_id), counts = coalesce(p_counts, counts),
      error = p_error, started_at = coalesce(started_at, now()), finished_at = now()
  where run_id = p_run and name = p_step and status in ('queued', 'running');
  if not found then
    return;
  end if;

  if p_status = 'failed' then
    with recursive downstream (name) as (
      select s.name from ferry.plan_steps s where s.run_id = p_run and p_step = any (s.after)
      union
      select s.name from ferry.plan_steps s join downstream d on d.name = any (s.after) where s.run_id = p_run
    )
    update ferry.plan_steps s
    set status = 'skipped', error = format('not run: step %s failed', p_step), finished_at = now()
    from downstream d
    where s.run_id = p_run and s.name = d.name and s.status = 'pending';
  end if;

  return query
    with ready as (
      update ferry.plan_steps s
      set status = 'queued'
      where s.run_id = p_run and s.status = 'pending'
        and not exists (
          select from unnest(s.after) as a (name)
          left join ferry.plan_steps p on p.run_id = p_run and p.name = a.name
          where p.status is distinct from 'succeeded'
        )
      returning s.name, s.position
    )
    select name from ready order by position;

  update ferry.plan_runs r
  set status = case when exists (select from ferry.plan_steps s where s.run_id = p_run and s.status = 'failed')
                    then 'failed' else 'succeeded' end,
      finished_at = now()
  where r.id = p_run and r.status = 'running'
    and not exists (select from ferry.plan_steps s
                    where s.run_id = p_run and s.status in ('pending', 'queued', 'running'));
end
$$;
