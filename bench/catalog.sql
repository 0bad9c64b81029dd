-- The benchmark's mapping, from bench/data/catalog-*.csv into bench.products (bench/schema.sql).
-- It outputs the staged text as it is: pgferry itself checks each value against the target's
-- column types, so the benchmark measures pgferry's work rather than a mapping's.
-- target: bench.products
-- key: sku
-- on_conflict: update
-- duplicates: last
select
  s.sku            as sku,
  s.name           as name,
  s.description    as description,
  s.price          as price,
  s.stock_quantity as stock_quantity,
  s.category       as category,
  s.supplier       as supplier,
  s.updated_at     as updated_at
from staged s
