-- pgferry catalog: what was loaded, for whom, with which mapping, and what was rejected.
-- Forward-only: never edit a released migration, add a new one.

create schema if not exists ferry;
comment on schema ferry is 'pgferry catalog: tenants, mappings, loads, rejects, undo, audit';

-- Helper functions that run inside tenant context (validation of staged values).
create schema ferry_util;
comment on schema ferry_util is 'pgferry helper functions callable by tenant roles';

-- One row; the instance id keeps role names of two databases on one cluster apart.
create table ferry.settings (
  singleton boolean primary key default true check (singleton),
  instance_id text not null default substr(md5(random()::text || clock_timestamp()::text), 1, 6),
  created_at timestamptz not null default now()
);
insert into ferry.settings default values;

-- Members of this group are the tenant roles: NOLOGIN, no BYPASSRLS. It holds no privilege on
-- any table (those are granted to each tenant role); a slug cannot start with _, so no tenant
-- role can have its name.
create function ferry.tenant_group() returns name
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select ('pgf_' || instance_id || '__tenants')::name from ferry.settings
$$;

create table ferry.tenants (
  id          bigint generated always as identity primary key,
  slug        text not null unique check (slug ~ '^[a-z][a-z0-9_]{0,39}$'),
  tenant_key  text not null unique,
  role_name   name not null unique,
  schema_name name not null unique,
  created_at  timestamptz not null default now()
);
comment on column ferry.tenants.tenant_key is 'value written into the tenant column of target tables (default: the slug)';
comment on column ferry.tenants.role_name is 'NOLOGIN role owning the tenant''s staging schema and compiled functions';

create table ferry.protected_tables (
  schema_name      name not null,
  table_name       name not null,
  tenant_column    name not null,
  tenant_type      text not null,
  passthrough_roles name[] not null default '{}',
  protected_at     timestamptz not null default now(),
  primary key (schema_name, table_name)
);

create table ferry.mappings (
  id            bigint generated always as identity primary key,
  name          text not null,
  version       integer not null,
  sha256        text not null,
  source        text not null,
  source_path   text,
  target_schema name not null,
  target_table  name not null,
  key_columns   text[] not null,
  on_conflict   text not null default 'update'
                check (on_conflict in ('update', 'skip', 'reject') or on_conflict ~ '^newer:.+'),
  duplicates    text not null default 'last' check (duplicates in ('last', 'first', 'reject')),
  checks        jsonb not null default '[]',
  select_sql    text not null,
  select_line   integer not null,
  compiled_sql  text,
  created_at    timestamptz not null default now(),
  unique (name, version),
  unique (name, sha256)
);
comment on column ferry.mappings.select_line is 'line of the mapping file where the SELECT starts (for error positions)';
comment on column ferry.mappings.compiled_sql is 'the functions compiled for the latest load that used this version';

create table ferry.loads (
  id              bigint generated always as identity primary key,
  tenant_id       bigint not null references ferry.tenants,
  mapping_id      bigint not null references ferry.mappings,
  status          text not null default 'registered'
                  check (status in ('registered', 'staging', 'transforming', 'promoting',
                                    'succeeded', 'failed', 'dry_run', 'rolled_back')),
  source          text not null,
  file_sha256     text,
  file_bytes      bigint,
  format          text,
  options         jsonb not null default '{}',
  staging_schema  name,
  columns         text[],
  checkpoint_line bigint not null default 0,
  rows_read       bigint not null default 0,
  rows_staged     bigint not null default 0,
  parse_rejects   bigint not null default 0,
  rows_rejected   bigint not null default 0,
  duplicates      bigint not null default 0,
  inserted        bigint not null default 0,
  updated         bigint not null default 0,
  unchanged       bigint not null default 0,
  timings         jsonb not null default '{}',
  compiled_sql    text,
  error           text,
  os_user         text,
  db_role         name not null default current_user,
  created_at      timestamptz not null default now(),
  finished_at     timestamptz
);
create index loads_tenant_mapping_sha on ferry.loads (tenant_id, mapping_id, file_sha256);
comment on column ferry.loads.checkpoint_line is 'last source line whose rows are committed in the staging table';
comment on column ferry.loads.timings is 'milliseconds spent per step: {"stage": 812, "transform": ...}';

create table ferry.rejects (
  id          bigint generated always as identity primary key,
  load_id     bigint not null references ferry.loads on delete cascade,
  step        text not null check (step in ('parse', 'transform', 'promote')),
  line        bigint,
  column_name text,
  value       text,
  rule        text not null,
  message     text not null,
  raw         text
);
create index rejects_load_line on ferry.rejects (load_id, line);
comment on table ferry.rejects is 'one row per failure: a line may fail several rules; rule ''duplicate'' marks rows superseded by another line of the same key';

comment on column ferry.rejects.line is 'source line (CSV) or record number where the row starts';

-- No foreign key to ferry.loads and no id of its own: a load writes one undo row per row it
-- changes, and a per-row referential check or sequence call cost more than the copy itself
-- (measured: 0.8 s for 100,000 rows with the foreign key).
create table ferry.undo (
  load_id       bigint not null,
  target_schema name not null,
  target_table  name not null,
  action        text not null check (action in ('insert', 'update')),
  key           jsonb not null,
  before        jsonb
);
create index undo_load on ferry.undo (load_id);
comment on table ferry.undo is 'before-images of rows a load changed (action update) and keys of rows it inserted';

create table ferry.audit (
  id        bigint generated always as identity primary key,
  at        timestamptz not null default now(),
  os_user   text,
  db_role   name not null default current_user,
  command   text not null,
  tenant    text,
  load_id   bigint,
  outcome   text not null,
  details   jsonb not null default '{}'
);

-- Nothing in ferry is for tenant roles; ferry_util is granted to them per database.
revoke all on schema ferry from public;
revoke all on schema ferry_util from public;
