-- Telling a running load from an interrupted one (issue 5). While a load's process lives, it
-- holds a session advisory lock on (ferry.load_lock_class(), load id) on a connection of its
-- own. A load whose status says it is in progress but whose lock nobody holds was interrupted
-- (its process killed, the server restarted): `pgferry loads` shows it as `interrupted`.

create function ferry.load_lock_class() returns integer
language sql immutable
set search_path = pg_catalog, pg_temp
as $$ select 1885956911 $$; -- 'pgfo' in ASCII: a key space of pgferry's own

-- Taken by the loader right after registering the load; false if another session holds it.
create function ferry.claim_load(p_load bigint) returns boolean
language sql
set search_path = pg_catalog, pg_temp
as $$ select pg_try_advisory_lock(ferry.load_lock_class(), p_load::integer) $$;

create function ferry.load_is_claimed(p_load bigint) returns boolean
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select exists (
    select from pg_locks
    where locktype = 'advisory'
      and database = (select oid from pg_database where datname = current_database())
      and classid = ferry.load_lock_class()::oid
      and objid = p_load::integer::oid
      and objsubid = 2
      and granted
  )
$$;

-- The status to show: `interrupted` for a load in progress that no process holds.
create function ferry.load_status(p_load ferry.loads) returns text
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
