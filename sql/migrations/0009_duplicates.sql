-- Duplicates, recorded compactly: the lines of a load that lost to another line of the same
-- key (duplicates: last or first) cost one row per key, holding only their line numbers, not
-- one wide ferry.rejects row each. A file of a million identical lines once wrote a million
-- reject rows with their raw text (hundreds of megabytes); here it is one row with an array.
-- `duplicates: reject` still writes `duplicate_key` rejects: those lines are rejected, to fix.
create table ferry.duplicates (
  load_id   bigint not null references ferry.loads on delete cascade,
  key       jsonb not null,
  kept_line bigint not null,
  lines     bigint[] not null
);
create index duplicates_load on ferry.duplicates (load_id, kept_line);
comment on table ferry.duplicates is
  'lines superseded by another line of the same key within a load (duplicates: last or first): '
  'one row per key (per million superseded lines), the line kept and the lines superseded. '
  'ferry.duplicate_lines(load) gives them a line per row; ferry.loads.duplicates counts them';
comment on column ferry.duplicates.key is 'the key''s values, as {"column": value}';
comment on column ferry.duplicates.kept_line is 'the line of the key that was kept (the last, or the first)';
comment on column ferry.duplicates.lines is 'the lines superseded, ascending';

-- Re-typed in compile.sql: it now also names the load's duplicates table.
drop function if exists ferry.duplicates_sql(ferry.mappings, text, text);
