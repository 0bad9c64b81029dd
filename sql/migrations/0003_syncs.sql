-- Incremental syncs from source databases.
--
-- A sync is declared in the project's pgferry.yaml; ferry.syncs keeps what was last declared
-- (never a password: `from` is `env:NAME` or a URL without its password) and whether its
-- schedule is paused. ferry.sync_state keeps its cursor: the largest value of the cursor
-- column among the rows pulled so far. Each run of a sync is a load whose options carry
-- {"sync": {...}}; ferry.finish_sync() advances the cursor inside the transaction that
-- promotes the load, so a crash either keeps both or neither: an increment is never skipped
-- nor doubled.

create table ferry.syncs (
  name       text primary key check (name ~ '^[A-Za-z_][A-Za-z0-9_-]{0,62}$'),
  tenant_id  bigint not null references ferry.tenants,
  mapping    text not null,
  mode       text not null check (mode in ('append', 'upsert', 'mirror')),
  schedule   text,
  config     jsonb not null,
  paused_at  timestamptz,
  paused_by  text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table ferry.syncs is 'syncs as pgferry.yaml last declared them, and whether their schedule is paused';

create table ferry.sync_state (
  sync_name        text primary key references ferry.syncs on delete cascade,
  cursor           text,
  cursor_type      text check (cursor_type in ('timestamptz', 'timestamp', 'date', 'numeric', 'text')),
  last_load_id     bigint references ferry.loads on delete set null,
  last_started_at  timestamptz,
  last_finished_at timestamptz,
  last_outcome     text,
  last_error       text,
  last_full_at     timestamptz
);
comment on column ferry.sync_state.cursor is
  'the largest cursor value pulled so far, as the source wrote it; the next increment pulls rows at or after it';
