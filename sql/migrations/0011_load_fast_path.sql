-- A full load with fewer passes (issue 24): the transform tries steps 1 to 4 in one optimistic
-- pass from the staging table into the work table, and the promotion inserts what cannot
-- conflict in one statement (compile.sql, promotion.sql). No table changes; two functions of
-- compile.sql take or give one more thing, so their old signatures go.

-- Re-typed in compile.sql: it also gives each output as the optimistic pass writes it.
drop function if exists ferry.output_columns(text, ferry.mappings, ferry.protected_tables);
-- Re-typed in compile.sql: it also takes the optimistic pass.
drop function if exists ferry.transform_function_sql(bigint, text, ferry.tenants, ferry.mappings,
                                                     ferry.protected_tables, text[], text[], text, integer);

-- A one-statement insert keeps its keys a column at a time: {"column": [values], ...} for up
-- to 10,000 rows (ferry.undo_keys reads both forms).
comment on table ferry.undo is
  'what undoes a load: before-images of the rows it updated (action update, one row each; or '
  'action updates, one row a batch: keys a JSON array, the rows in before_rows), the keys of the '
  'rows it inserted (action inserts, one undo row a batch or 10,000 rows: key is a JSON array of '
  'keys, or an object of one array of values a key column) and the rows a mirror sync deleted '
  '(action delete); xid is the xmin the rows were written with. '
  'ferry.undo_log(load) reads it a row per row.';
