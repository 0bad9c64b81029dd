-- Claims and target locks: telling a running load from an interrupted one, fencing a process
-- that lost its claim, and making loads into one tenant's table take turns (saying whom a load
-- waits for).
--
-- While a load's process lives, it holds a session advisory lock on ferry.load_claim_key(load
-- id), the load's claim, on a connection of its own (or one a sync lends it). A load whose
-- status says it is in progress but whose claim nobody holds was interrupted (its process
-- killed, the server restarted): `pgferry loads` shows it as `interrupted`, and `pgferry
-- resume` can claim it and finish it.
--
-- The lock alone cannot stop a process that lost it without noticing (only its claim
-- connection was cut) from writing beside the one that took the load over. So taking a claim
-- also raises the load's claim_epoch, the process keeps the epoch it got, and every step that
-- writes calls ferry.check_claim in its own transaction: holding the load's row, it refuses
-- to go on once another process took the load. A takeover's raise of the epoch waits for a
-- promotion in flight (which holds the row): either that promotion commits first, and the
-- takeover sees the load succeeded, or the takeover comes first, and the promotion refuses.

-- The key of a load's claim: derived from the installation's secret (ferry.lock_key), so that
-- tenant code cannot take the claim of a load, present or future.
create or replace function ferry.load_claim_key(p_load bigint) returns bigint
language sql stable
set search_path = pg_catalog, pg_temp
as $$ select ferry.lock_key('load', p_load::text) $$;

-- Takes the load's claim lock for this session, until the session ends or unlocks it; false
-- if another session holds it. Only the lock: ferry.take_load_claim also raises the epoch.
create or replace function ferry.claim_load(p_load bigint) returns boolean
language sql
set search_path = pg_catalog, pg_temp
as $$ select pg_try_advisory_lock(ferry.load_claim_key(p_load)) $$;

-- Claims the load for this session (start, resume, takeover) and returns the load's new claim
-- epoch, the process's token for ferry.check_claim; NULL if another session holds the claim.
-- Raising the epoch waits for a step in flight that holds the load's row (a promotion).
create or replace function ferry.take_load_claim(p_load bigint, p_owner text) returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_epoch bigint;
begin
  if not ferry.claim_load(p_load) then
    return null;
  end if;
  update ferry.loads
  set claim_epoch = claim_epoch + 1, claimed_by = p_owner, claimed_at = now()
  where id = p_load
  returning claim_epoch into v_epoch;
  if v_epoch is null then
    perform pg_advisory_unlock(ferry.load_claim_key(p_load));
    raise exception 'no load %', p_load using errcode = '42704';
  end if;
  return v_epoch;
end
$$;

-- After its claim connection was lost, a process takes the claim lock again, keeping its
-- epoch, if nobody took the load meanwhile: 'retaken'; 'taken over' if the epoch moved on
-- (the lock is then not kept); 'busy' if another session holds the lock (a takeover whose
-- raise of the epoch waits, or a retake still under way): asked again later.
create or replace function ferry.retake_load_claim(p_load bigint, p_epoch bigint) returns text
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_epoch bigint;
begin
  if not ferry.claim_load(p_load) then
    select claim_epoch into v_epoch from ferry.loads where id = p_load;
    return case when v_epoch is distinct from p_epoch then 'taken over' else 'busy' end;
  end if;
  -- No row lock needed (one would wait for this process's own step in flight): whoever raises
  -- the epoch holds the claim's lock first, and this session holds it now.
  select claim_epoch into v_epoch from ferry.loads where id = p_load;
  if v_epoch is distinct from p_epoch then
    perform pg_advisory_unlock(ferry.load_claim_key(p_load));
    return 'taken over';
  end if;
  return 'retaken';
end
$$;

-- The fence: called by every step that writes, inside its own transaction, with the epoch its
-- process got. It locks the load's row until that transaction ends (so that no takeover
-- comes in between) and raises SQLSTATE PF003 when another process took the load over: the
-- step's transaction, and the process, stop without writing.
create or replace function ferry.check_claim(p_load bigint, p_epoch bigint) returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_load ferry.loads;
begin
  select * into v_load from ferry.loads where id = p_load for no key update;
  if v_load.claim_epoch is distinct from p_epoch then
    raise exception 'load % was taken over by another process (%); this process stops without writing',
      p_load, coalesce(v_load.claimed_by, 'unknown') || coalesce(', at ' || v_load.claimed_at::text, '')
      using errcode = 'PF003';
  end if;
end
$$;

-- Whether some session holds the load's claim; looking never takes it.
create or replace function ferry.load_is_claimed(p_load bigint) returns boolean
language sql stable
set search_path = pg_catalog, pg_temp
as $$ select ferry.lock_is_held(ferry.load_claim_key(p_load)) $$;

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
