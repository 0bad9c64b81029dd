-- The demo's target: a supplier product catalog shared by tenants.
create schema if not exists app;

create table if not exists app.products (
  tenant_id      text          not null,
  sku            text          not null,
  name           text          not null,
  description    text,
  price          numeric(10,2) not null check (price >= 0),
  stock_quantity integer       not null default 0,
  category       varchar(40),
  updated_at     timestamptz,
  primary key (tenant_id, sku)
);
