-- Loads: one run of one source through the steps (stage, transform, promote, verify,
-- cleanup), what it rejected, what undoes it, how far it is and whether it was asked to stop.

create table ferry.loads (
  id              bigint generated always as identity primary key,
  tenant_id       bigint not null references ferry.tenants,
  mapping_id      bigint not null references ferry.mappings,
  status          text not null default 'registered'
                  check (status in ('queued', 'registered', 'staging', 'transforming', 'promoting',
                                    'succeeded', 'failed', 'dry_run', 'rolled_back', 'cancelled')),
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
  finished_at     timestamptz,
  rolled_back_at  timestamptz,
  undo_pruned_at  timestamptz,
  queued_by       text,
  deleted         bigint not null default 0
);
create index loads_tenant_mapping_sha on ferry.loads (tenant_id, mapping_id, file_sha256);
comment on column ferry.loads.checkpoint_line is 'last source line whose rows are committed in the staging table';
comment on column ferry.loads.timings is 'milliseconds spent per step: {"stage": 812, "transform": ...}';
comment on column ferry.loads.undo_pruned_at is 'when pgferry prune removed the undo log: the load can no longer be rolled back';
comment on column ferry.loads.deleted is 'rows of the tenant that a mirror sync deleted or soft-deleted, absent from its full pull';

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

-- What undoes a load. No foreign key to ferry.loads and no id of its own: a load writes its
-- undo rows in bulk, and a per-row referential check or sequence call would cost more than
-- the copy itself. Each row keeps `xid`, the xmin its rows were written with: a row that a
-- later load or any other write changed, or deleted, no longer has that xmin, and rollback
-- refuses to touch it unless forced.
create table ferry.undo (
  load_id       bigint not null,
  target_schema name not null,
  target_table  name not null,
  action        text not null check (action in ('inserts', 'update', 'updates', 'delete')),
  key           jsonb not null,
  before        jsonb,
  xid           bigint not null,
  before_rows   text,
  row_type      text,
  constraint undo_updates_rows check (action <> 'updates' or (before_rows is not null and row_type is not null))
);
create index undo_load on ferry.undo (load_id);
-- Written once, read only by a rollback: not worth compressing on the way in.
alter table ferry.undo alter column before_rows set storage external;
comment on table ferry.undo is
  'what undoes a load: before-images of the rows it updated (action update, one row each; or '
  'action updates, one row a batch: keys a JSON array, the rows in before_rows), the keys of the '
  'rows it inserted (action inserts: key is a JSON array of keys, one undo row a batch) and the '
  'rows a mirror sync deleted (action delete); xid is the xmin the rows were written with. '
  'ferry.undo_log(load) reads it a row per row.';
comment on column ferry.undo.before_rows is
  'action updates: the before-images of a batch''s updated rows, the text of an array of row_type, in the order of key';
comment on column ferry.undo.row_type is
  'action updates: the target''s columns when the load wrote them ("name type, ..."), what before_rows reads as';

-- Kept apart from ferry.loads: a promotion holds its load's row until it commits, and a
-- cancel must not wait for that.
create table ferry.cancel_requests (
  load_id      bigint primary key references ferry.loads on delete cascade,
  requested_at timestamptz not null default now(),
  requested_by text
);
comment on table ferry.cancel_requests is
  '`pgferry cancel` asked these running loads to stop: each stops at its next batch and rolls back';

-- Progress lives in a table of its own so that writing it never waits for the promotion's
-- transaction, which holds the load's row until it commits.
create table ferry.load_progress (
  load_id    bigint primary key references ferry.loads on delete cascade,
  step       text not null,
  done       bigint not null default 0,
  total      bigint not null default 0,
  rows       bigint not null default 0,
  worker     text,
  updated_at timestamptz not null default now()
);
comment on table ferry.load_progress is
  'where a running load is: its step, how far (done of total: bytes while staging, rows while promoting)';
