-- Duplicates: the lines of a load superseded by another line of the same key. The transform
-- records them a row per key in ferry.duplicates (compile.sql, duplicates_sql); loads compiled
-- before that table existed recorded each as a ferry.rejects row of rule `duplicate`. These
-- read both.

-- How many lines of a load were superseded.
create or replace function ferry.duplicate_count(p_load bigint) returns bigint
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select coalesce((select sum(cardinality(lines)) from ferry.duplicates where load_id = p_load), 0)::bigint
       + (select count(*) from ferry.rejects where load_id = p_load and rule = 'duplicate')
$$;

-- The superseded lines of a load, a line per row, ascending: the line, its key, the line kept
-- instead and why.
create or replace function ferry.duplicate_lines(p_load bigint)
returns table (line bigint, key jsonb, kept_line bigint, message text)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  with d as (
    select key, kept_line, lines, sum(cardinality(lines)) over (partition by kept_line) as superseded
    from ferry.duplicates
    where load_id = p_load
  )
  select u.line, d.key, d.kept_line,
         format('key appears on %s lines; line %s wins (duplicates: %s)',
                d.superseded + 1, d.kept_line, case when d.kept_line < u.line then 'first' else 'last' end)
  from d
  cross join lateral unnest(d.lines) as u (line)
  union all
  select r.line, r.value::jsonb, null, r.message
  from ferry.rejects as r
  where r.load_id = p_load and r.rule = 'duplicate'
  order by 1
$$;
