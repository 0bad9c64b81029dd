-- A secret of the installation, from which every key of pgferry's advisory locks is derived
-- (ferry.lock_key, coordination.sql). Tenant code may call the advisory lock functions (they
-- are granted to PUBLIC, and only a superuser could revoke that): with keys it cannot compute,
-- it cannot take, wait on or stall pgferry's locks. Tenant roles cannot read ferry.settings.
alter table ferry.settings
  add column lock_secret text not null
    default replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');

comment on column ferry.settings.lock_secret is
  'Secret mixed into every advisory lock key of pgferry (ferry.lock_key); never readable by tenant roles.';
