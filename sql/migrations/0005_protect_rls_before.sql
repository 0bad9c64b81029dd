-- What `pgferry tenant protect` found before it enabled row-level security on a table, so
-- that `pgferry uninstall` can put the table back as it was.

alter table ferry.protected_tables add column rls_before boolean;
comment on column ferry.protected_tables.rls_before is
  'whether the table had row-level security enabled before pgferry first protected it (NULL: protected before pgferry recorded it)';
