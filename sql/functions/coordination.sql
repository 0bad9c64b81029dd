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

-- Makes the row of lock_row(p_purpose, p_subject), if there is none.
create or replace function ferry.make_lock_row(p_purpose text, p_subject text) returns void
language sql
set search_path = pg_catalog, pg_temp
as $$
  insert into ferry.coordination_locks (purpose, subject) values (p_purpose, p_subject)
  on conflict do nothing
$$;

-- Takes the lock of (p_purpose, p_subject) until this transaction ends, waiting for whoever
-- holds it: a row lock of ferry.coordination_locks (its row made on first use), which tenant
-- roles can neither take nor see the key of (an advisory key shows in pg_locks, readable by
-- PUBLIC, while it is held). Taken in a subtransaction that rolls back, it is released with
-- it: take it before any savepoint that may be rolled back to.
create or replace function ferry.lock_row(p_purpose text, p_subject text) returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  perform ferry.make_lock_row(p_purpose, p_subject);
  perform from ferry.coordination_locks where purpose = p_purpose and subject = p_subject for update;
end
$$;

-- lock_row without waiting: NULL when this transaction now holds the lock, else the pid of
-- the session holding it (the transaction whose id is the row's xmax), or 0 when that is no
-- longer known (it just ended). Its row should exist (make_lock_row, committed): making it here
-- would wait for a transaction that made it and has not committed yet.
create or replace function ferry.try_lock_row(p_purpose text, p_subject text) returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_xmax xid;
begin
  perform ferry.make_lock_row(p_purpose, p_subject);
  -- SKIP LOCKED, not NOWAIT in an exception block: the lock is then this transaction's own,
  -- not a subtransaction's (whose xid a later lock_row of the same transaction would join
  -- into a multixact, hiding the holder).
  perform from ferry.coordination_locks where purpose = p_purpose and subject = p_subject for update skip locked;
  if found then
    return null;
  end if;
  select c.xmax into v_xmax from ferry.coordination_locks c where purpose = p_purpose and subject = p_subject;
  return coalesce((
    select k.pid from pg_locks k
    where k.locktype = 'transactionid' and k.transactionid = v_xmax and k.mode = 'ExclusiveLock' and k.granted
    limit 1), 0);
end
$$;

-- The advisory lock class of pgferry's workers (each holds (class, hashtext(worker id)) while
-- it lives; worker-liveness.ts): the high half of a secret key, so that tenant code cannot
-- name it, while `uninstall` and `plan run` can still find the workers by their class.
create or replace function ferry.worker_lock_class() returns integer
language sql stable
set search_path = pg_catalog, pg_temp
as $$ select (ferry.lock_key('worker', '') >> 32)::integer $$;
