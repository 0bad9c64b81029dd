-- Plans: an ordered set of loads and syncs with dependencies, run by the worker.
--
-- `pgferry plan run PLAN.yaml` records a run and its steps, then queues the steps that wait
-- for nothing. Each step is a job of its own (graphile-worker task pgferry_plan_step); when
-- it ends, ferry.finish_plan_step() records its outcome and says which steps are now ready.
-- What a step is to do is kept in its spec, so a run does what was validated even if the
-- file changes meanwhile.

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
