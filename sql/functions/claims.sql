-- Claims and target locks: telling a running load from an interrupted one, and making loads
-- into one tenant's table take turns (saying whom a load waits for).
--
-- While a load's process lives, it holds a session advisory lock on (ferry.load_lock_class(),
-- load id), the load's claim, on a connection of its own (or one a sync lends it). A load whose
-- status says it is in progress but whose claim nobody holds was interrupted (its process
-- killed, the server restarted): `pgferry loads` shows it as `interrupted`, and `pgferry
-- resume` can claim it and finish it.

-- The advisory lock class of load claims: 1885956911 is 'pgfo' in ASCII, a key space of
-- pgferry's own.
create or replace function ferry.load_lock_class() returns integer
language sql immutable
set search_path = pg_catalog, pg_temp
as $$ select 1885956911 $$;

-- Claims the load for this session, until the session ends or unlocks it; false if another
-- session holds it. The loader claims a load when it starts or resumes it.
create or replace function ferry.claim_load(p_load bigint) returns boolean
language sql
set search_path = pg_catalog, pg_temp
as $$ select pg_try_advisory_lock(ferry.load_lock_class(), p_load::integer) $$;

-- Whether some session holds the load's claim. Read from pg_locks (a lock on two integer keys
-- shows there with objsubid 2), so that looking never takes the claim.
create or replace function ferry.load_is_claimed(p_load bigint) returns boolean
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

-- Loads into the same tenant and target take turns: the promotion (and a rollback) takes this
-- lock, held until its transaction ends. A row lock of ferry.coordination_locks (lock_row,
-- coordination.sql), not an advisory lock: a tenant's mapping can neither take it nor wait on it
-- to stall another tenant's promotion.
create or replace function ferry.target_lock_subject(p_load bigint) returns text
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select format('%s:%s.%s', t.slug, m.target_schema, m.target_table)
  from ferry.loads l
  join ferry.tenants t on t.id = l.tenant_id
  join ferry.mappings m on m.id = l.mapping_id
  where l.id = p_load
$$;

create or replace function ferry.lock_target(p_load bigint) returns void
language sql
set search_path = pg_catalog, pg_temp
as $$ select ferry.lock_row('target', ferry.target_lock_subject(p_load)) $$;

-- The lock of lock_target, tried without waiting by the loader before it promotes: NULL when
-- this load now holds it, else the id of the load whose session holds it (its promotion sets
-- application_name to 'pgferry load <id>'), or 0 when the holder is something else (a
-- rollback, say), so that the loader can say whom it waits for.
create or replace function ferry.try_lock_target(p_load bigint) returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_pid integer := ferry.try_lock_row('target', ferry.target_lock_subject(p_load));
begin
  if v_pid is null then
    return null;
  end if;
  return coalesce((
    select substring(a.application_name from '^pgferry load ([0-9]+)$')::bigint
    from pg_stat_activity a where a.pid = v_pid), 0);
end
$$;
