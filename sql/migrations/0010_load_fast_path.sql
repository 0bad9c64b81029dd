-- A full load with fewer passes (issue 24): the transform tries steps 1 to 4 in one optimistic
-- pass from the staging table into the work table, and the promotion inserts what cannot
-- conflict in one statement (compile.sql, promotion.sql). No table changes; two functions of
-- compile.sql take or give one more thing, so their old signatures go.

-- Re-typed in compile.sql: it also gives each output as the optimistic pass writes it.
drop function if exists ferry.output_columns(text, ferry.mappings, ferry.protected_tables);
-- Re-typed in compile.sql: it also takes the optimistic pass.
drop function if exists ferry.transform_function_sql(bigint, text, ferry.tenants, ferry.mappings,
                                                     ferry.protected_tables, text[], text[], text, integer);
