-- Telling a running load from an interrupted one, and whom a load waits for (issue 5). While a load's process lives, it
-- holds a session advisory lock on (ferry.load_lock_class(), load id) on a connection of its
-- own. A load whose status says it is in progress but whose lock nobody holds was interrupted
-- (its process killed, the server restarted): `pgferry loads` shows it as `interrupted`.
create or replace function ferry.load_lock_class() returns integer
language sql immutable
set search_path = pg_catalog, pg_temp
as $$ select 1885956911 $$;

-- 'pgfo' in ASCII: a key space of pgferry's own

-- Taken by the loader right after registering the load; false if another session holds it.
create or replace function ferry.claim_load(p_load bigint) returns boolean
language sql
set search_path = pg_catalog, pg_temp
as $$ select pg_try_advisory_lock(ferry.load_lock_class(), p_load::integer) $$;

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

-- Loads into the same tenant and target take turns: the lock is held until the promotion's
-- transaction ends.
create or replace function ferry.lock_target(p_load bigint) returns void
language sql
set search_path = pg_catalog, pg_temp
as $$
  select pg_advisory_xact_lock(
    hashtextextended(format('pgferry:%s:%s.%s', t.slug, m.target_schema, m.target_table), 0))
  from ferry.loads l
  join ferry.tenants t on t.id = l.tenant_id
  join ferry.mappings m on m.id = l.mapping_id
  where l.id = p_load
$$;

-- Promotion takes the tenant+target lock (ferry.lock_target). Tried first without waiting:
-- NULL when this load now holds it, else the id of the load whose session holds it (its
-- promotion sets application_name to 'pgferry load <id>'), or 0 when the holder is something
-- else (a rollback, say), so that the loader can say whom it waits for.
create or replace function ferry.try_lock_target(p_load bigint) returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_key    bigint;
  v_holder bigint;
begin
  select hashtextextended(format('pgferry:%s:%s.%s', t.slug, m.target_schema, m.target_table), 0)
  into strict v_key
  from ferry.loads l
  join ferry.tenants t on t.id = l.tenant_id
  join ferry.mappings m on m.id = l.mapping_id
  where l.id = p_load;
  if pg_try_advisory_xact_lock(v_key) then
    return null;
  end if;
  -- A bigint advisory key shows in pg_locks as its high and low 32 bits.
  select substring(a.application_name from '^pgferry load ([0-9]+)$')::bigint
  into v_holder
  from pg_locks k
  join pg_stat_activity a on a.pid = k.pid
  where k.locktype = 'advisory' and k.granted and k.objsubid = 1
    and k.database = (select oid from pg_database where datname = current_database())
    and k.classid = ((v_key >> 32) & 4294967295)::text::oid
    and k.objid = (v_key & 4294967295)::text::oid
  limit 1;
  return coalesce(v_holder, 0);
end
$$;
