-- Rows whose locks make pgferry's transactions take turns (one tenant's loads into one table,
-- one tenant's compiles, one mapping name's registrations), instead of advisory locks: PUBLIC
-- may read pg_locks, so a tenant's mapping could see an advisory key while it is held and take
-- it later, whatever secret it was derived from. A row lock of a table tenant roles cannot
-- touch can be neither seen as a key nor taken by them.
create table ferry.coordination_locks (
  purpose text not null,
  subject text not null,
  primary key (purpose, subject)
);
comment on table ferry.coordination_locks is
  'One row per thing pgferry''s transactions take turns on (ferry.lock_row); its row lock is the lock.';
