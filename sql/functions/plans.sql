-- Plans: a run of `pgferry plan run` is a set of steps (loads and syncs, each after the steps
-- it names), run by the worker as jobs; a step's end, recorded here, queues the steps it
-- makes ready and ends the run after its last step.

-- A step ended: records its outcome (succeeded or failed), skips the dependents of a failed
-- step (transitively), marks `queued` and returns the steps now ready (every prerequisite
-- succeeded), and ends the run when no step is left to run. The run's row is locked first:
-- two steps ending at once are recorded one after the other, so a dependent of both is
-- found ready exactly once, by the second. The caller queues the returned steps' jobs in
-- the same transaction. A step already recorded (its job tried again after a crash) changes
-- nothing and returns no step.
create or replace function ferry.finish_plan_step(p_run bigint, p_step text, p_status text, p_load bigint,
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
