-- Supplier product catalog -> app.products
-- target: app.products
-- key: sku
-- on_conflict: update            -- update | skip | reject | newer:updated_at
-- duplicates: last               -- last | first | reject
-- check: price >= 0 | price must not be negative
-- check: stock_quantity >= 0 | stock must not be negative
select
  upper(regexp_replace(s."Item Code", '[^A-Za-z0-9-]', '', 'g')) as sku,
  initcap(btrim(s."Item Name"))                                   as name,
  nullif(btrim(s."Description"), '')                              as description,
  replace(btrim(s."Unit Price"), ',', '.')                         as price,
  btrim(s."Qty On Hand")                                           as stock_quantity,
  nullif(btrim(s."Category"), '')                                 as category,
  s."Last Updated"                                                 as updated_at
from staged s
