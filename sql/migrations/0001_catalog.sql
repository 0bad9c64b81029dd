-- pgferry's catalog: the tenants, the tables they are protected in, the mappings and the audit
-- trail. The schemas ferry (the catalog; nothing in it is for tenant roles) and ferry_util
-- (helpers granted to tenant roles per database).
--
-- Forward-only from the first release: never edit a released migration, add a new one.
-- Functions live in sql/functions/, not here.

comment on schema ferry is 'pgferry catalog: tenants, mappings, loads, rejects, undo, audit';

create schema ferry_util;
comment on schema ferry_util is 'pgferry helper functions callable by tenant roles';

-- One row; the instance id keeps role names of two databases on one cluster apart.
create table ferry.settings (
  singleton   boolean primary key default true check (singleton),
  instance_id text not null default substr(md5(random()::text || clock_timestamp()::text), 1, 6),
  created_at  timestamptz not null default now()
);
insert into ferry.settings default values;

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
  schema_name       name not null,
  table_name        name not null,
  tenant_column     name not null,
  tenant_type       text not null,
  passthrough_roles name[] not null default '{}',
  protected_at      timestamptz not null default now(),
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

revoke all on schema ferry from public;
revoke all on schema ferry_util from public;
