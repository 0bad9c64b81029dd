-- Keys of pgferry's advisory locks, which tenant code cannot compute.
--
-- A mapping's SELECT runs as its tenant, and PUBLIC may call pg_advisory_lock() and its
-- kin: a key that is a constant, a hash of a name or a load id could be taken by a tenant to
-- stall or disturb another tenant's load. Every key pgferry locks is therefore a 64-bit hash of
-- ferry.settings.lock_secret (which tenant roles cannot read), a purpose and a subject.

-- The advisory lock key of `p_purpose` (what is coordinated: 'load', 'target', 'mapping', …)
-- for `p_subject` (a load id, a table, a name).
create or replace function ferry.lock_key(p_purpose text, p_subject text) returns bigint
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select hashtextextended(s.lock_secret || ':' || p_purpose || ':' || p_subject, 0)
  from ferry.settings s
$$;

-- Whether some session of this database holds the (one-key) advisory lock `p_key`, read from
-- pg_locks, so that looking never takes it. A bigint key shows there as classid (its high 32
-- bits) and objid (its low 32 bits), with objsubid 1.
create or replace function ferry.lock_is_held(p_key bigint) returns boolean
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select exists (
    select from pg_locks
    where locktype = 'advisory'
      and database = (select oid from pg_database where datname = current_database())
      and classid = ((p_key >> 32) & 4294967295)::oid
      and objid = (p_key & 4294967295)::oid
      and objsubid = 1
      and granted
  )
$$;
