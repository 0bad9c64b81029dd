-- Fencing a load's claim: each time a process takes a load (starts, resumes or takes it over)
-- the load's claim_epoch goes up by one, and the process keeps the epoch it got. Every step
-- that writes checks, in its own transaction and holding the load's row, that the epoch is
-- still its own (ferry.check_claim, claims.sql): a process that lost its claim without
-- noticing cannot commit after another process took the load over.
alter table ferry.loads
  add column claim_epoch bigint not null default 0,
  add column claimed_by  text,
  add column claimed_at  timestamptz;

comment on column ferry.loads.claim_epoch is
  'how many times a process took the load (ferry.take_load_claim); only the holder of the latest may write';
comment on column ferry.loads.claimed_by is 'who took the load last: host, process id, runner';
comment on column ferry.loads.claimed_at is 'when the load was last taken';

-- The claim's advisory lock is now ferry.lock_key('load', id), which tenant code cannot compute.
drop function if exists ferry.load_lock_class();
