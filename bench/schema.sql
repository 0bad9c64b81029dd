-- The benchmark's tables, created by bench/run.ts (as the server's superuser).
create schema if not exists bench;

-- (1) the floor: psql \copy into an UNLOGGED table of text columns, no index.
create unlogged table if not exists bench.stage (
  sku            text,
  name           text,
  description    text,
  price          text,
  stock_quantity text,
  category       text,
  supplier       text,
  updated_at     text
);

-- The typed target of (2) psql \copy, (4)-(5) pgferry and (6) pgloader: the same table for
-- all, truncated before each case that needs it empty. pgferry writes tenant_id itself; the
-- default lets \copy and pgloader, which know no tenants, fill it with the same value.
create table if not exists bench.products (
  tenant_id      text          not null default 'bench',
  sku            text          not null,
  name           text,
  description    text,
  price          numeric(12,2),
  stock_quantity integer,
  category       text,
  supplier       text,
  updated_at     timestamptz,
  primary key (tenant_id, sku)
);
