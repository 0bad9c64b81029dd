-- Restores of a tenant's backup (`pgferry tenant restore`, `pgferry tenant copy`), and what
-- undoes one.
--
-- A restore writes every row in one transaction, so every row it inserted carries that
-- transaction's id as its xmin: undoing it deletes the tenant's rows with that xmin, and the
-- count of them tells whether any was changed or deleted since (a conflict, as for a load).
-- With --replace, the rows it deleted first are kept here as before-images, as ferry.undo
-- keeps the rows a mirror sync deleted, and come back when the restore is rolled back.

create table ferry.restores (
  id             bigint generated always as identity primary key,
  tenant_id      bigint not null references ferry.tenants,
  source         text not null,
  backup_tenant  text not null,
  replaced       boolean not null,
  xid            bigint not null,
  tables         jsonb not null default '[]',
  status         text not null default 'restoring'
                 check (status in ('restoring', 'restored', 'rolled_back')),
  os_user        text,
  db_role        name not null default current_user,
  created_at     timestamptz not null default now(),
  rolled_back_at timestamptz
);
comment on table ferry.restores is 'restores of tenant backups (pgferry tenant restore, tenant copy); pgferry tenant rollback-restore undoes one';
comment on column ferry.restores.xid is 'the restore''s transaction id (32 bits, as xmin shows it): the xmin of every row it inserted';
comment on column ferry.restores.tables is 'the tables restored, in foreign-key order: [{"table", "rows", "replaced"}]';

create table ferry.restore_undo (
  restore_id    bigint not null references ferry.restores on delete cascade,
  target_schema name not null,
  target_table  name not null,
  before        jsonb not null
);
create index restore_undo_restore on ferry.restore_undo (restore_id, target_schema, target_table);
comment on table ferry.restore_undo is 'the rows a restore with --replace deleted first, a row each (to_jsonb of the row)';

-- A plan may take a tenant's backup as a step (`backup: TENANT`, `to: DIR`) before its loads.
alter table ferry.plan_steps drop constraint plan_steps_kind_check;
alter table ferry.plan_steps add constraint plan_steps_kind_check check (kind in ('load', 'sync', 'backup'));
