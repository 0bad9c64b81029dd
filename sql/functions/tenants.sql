-- Tenants and row-level security: `pgferry tenant add` (add_tenant), `pgferry tenant protect`
-- (protect_table), and the tenant of a load, which every step looks up (load_tenant).
--
-- Each tenant gets a NOLOGIN role without BYPASSRLS, and a schema for its loads' tables and
-- functions (the schema owned by the loader, not the tenant). A load's mapping and promotion
-- are compiled into SECURITY DEFINER functions owned by the tenant's role, where PostgreSQL
-- refuses any change of `role` or `session_authorization`; the policies on a protected table
-- are keyed on the role itself (no setting a mapping could change), so a mapping cannot see or
-- write another tenant's rows.
--
-- Role names carry the instance id of ferry.settings: roles belong to the whole cluster, and
-- two databases with pgferry must not share them.

-- The group whose members are this instance's tenant roles (NOLOGIN, no BYPASSRLS). It holds
-- no privilege on any table (those are granted to each tenant role); a slug cannot start with
-- _, so no tenant role can have its name.
create or replace function ferry.tenant_group() returns name
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select ('pgf_' || instance_id || '__tenants')::name from ferry.settings
$$;

-- The role name of tenant p_slug.
create or replace function ferry.tenant_role_name(p_slug text) returns name
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select ('pgf_' || instance_id || '_' || p_slug)::name from ferry.settings
$$;

-- Creates the tenant group if it is missing, and grants it what every tenant's compiled code
-- calls: the type checks of ferry_util (validation.sql). Returns its name.
create or replace function ferry.ensure_tenant_group() returns name
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_group name := ferry.tenant_group();
begin
  if not exists (select from pg_roles where rolname = v_group) then
    execute format('create role %I nologin noinherit nobypassrls', v_group);
    execute format('comment on role %I is %L', v_group,
                   format('pgferry tenant roles of database %s', current_database()));
  end if;
  execute format('grant usage on schema ferry_util to %I', v_group);
  execute format('grant execute on function ferry_util.input_error(text, text), ferry_util.soft_input_error(text, text) to %I',
                 v_group);
  return v_group;
end
$$;

-- Refuses a tenant name that is not a slug: it becomes part of a role's and a schema's name.
create or replace function ferry.check_slug(p_slug text) returns void
language plpgsql immutable
set search_path = pg_catalog, pg_temp
as $$
begin
  if p_slug is null or p_slug !~ '^[a-z][a-z0-9_]{0,39}$' then
    raise exception 'invalid tenant name %', coalesce(quote_literal(p_slug), 'NULL')
      using errcode = '22023',
            hint = 'a tenant name starts with a lower-case letter, then up to 39 of a-z, 0-9 and _';
  end if;
end
$$;

-- Lets one tenant role use one protected table: row privileges for that role alone (not for
-- the group, which has no restrictive policy), and the two policies that confine it to its
-- rows. The permissive one grants access; the restrictive one makes sure no other permissive
-- policy (say an application's `TO public USING (true)`) widens it.
create or replace function ferry.admit_tenant(p_table ferry.protected_tables, p_tenant ferry.tenants)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_match text := format('%I = %L::%s', p_table.tenant_column, p_tenant.tenant_key, p_table.tenant_type);
  v_seq   text;
begin
  execute format('grant usage on schema %I to %I', p_table.schema_name, p_tenant.role_name);
  execute format('grant select, insert, update, delete on %I.%I to %I',
                 p_table.schema_name, p_table.table_name, p_tenant.role_name);
  -- serial columns: inserting calls nextval() as the tenant role.
  for v_seq in
    select pg_get_serial_sequence(format('%I.%I', p_table.schema_name, p_table.table_name), a.attname)
    from pg_attribute a
    where a.attrelid = format('%I.%I', p_table.schema_name, p_table.table_name)::regclass
      and a.attnum > 0 and not a.attisdropped
      and pg_get_serial_sequence(format('%I.%I', p_table.schema_name, p_table.table_name), a.attname) is not null
  loop
    execute format('grant usage on sequence %s to %I', v_seq, p_tenant.role_name);
  end loop;
  execute format('drop policy if exists %I on %I.%I', 'pgferry_tenant_' || p_tenant.slug, p_table.schema_name, p_table.table_name);
  execute format('drop policy if exists %I on %I.%I', 'pgferry_only_' || p_tenant.slug, p_table.schema_name, p_table.table_name);
  execute format(
    'create policy %I on %I.%I as permissive for all to %I using (%s) with check (%s)',
    'pgferry_tenant_' || p_tenant.slug, p_table.schema_name, p_table.table_name, p_tenant.role_name,
    v_match, v_match);
  execute format(
    'create policy %I on %I.%I as restrictive for all to %I using (%s) with check (%s)',
    'pgferry_only_' || p_tenant.slug, p_table.schema_name, p_table.table_name,
    p_tenant.role_name, v_match, v_match);
end
$$;

-- `pgferry tenant add`: the tenant's role (in the group), its schema, its row in ferry.tenants
-- (its key is its slug unless given), and its policies on every protected table.
create or replace function ferry.add_tenant(p_slug text, p_key text default null)
returns ferry.tenants
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_group  name := ferry.ensure_tenant_group();
  v_role   name;
  v_schema name := ('ferry_t_' || p_slug)::name;
  v_tenant ferry.tenants;
  v_table  ferry.protected_tables;
begin
  perform ferry.check_slug(p_slug);
  v_role := ferry.tenant_role_name(p_slug);
  if exists (select from ferry.tenants where slug = p_slug) then
    raise exception 'tenant % already exists', p_slug using errcode = '42710';
  end if;

  -- Never adopt a role that exists already: its attributes and memberships are not ours.
  if exists (select from pg_roles where rolname = v_role) then
    raise exception 'role % exists already: pgferry will not use it as the role of tenant %', v_role, p_slug
      using errcode = '42710', hint = 'drop that role, or choose another tenant name';
  end if;
  execute format('create role %I nologin inherit nosuperuser nocreatedb nocreaterole nobypassrls in role %I',
                 v_role, v_group);
  execute format('comment on role %I is %L', v_role,
                 format('pgferry tenant %s of database %s', p_slug, current_database()));
  -- A non-superuser loader must be able to create objects owned by the tenant role.
  if not (select rolsuper from pg_roles where rolname = current_user) then
    execute format('grant %I to %I', v_role, current_user);
  end if;
  -- The loader owns the schema and the tables in it; the tenant may only use them (a schema
  -- owner could drop and replace the loader's tables).
  execute format('create schema %I', v_schema);
  execute format('revoke all on schema %I from public', v_schema);
  execute format('grant usage on schema %I to %I', v_schema, v_role);
  -- A loader that is not a superuser can hand functions to the tenant only if it may create there.
  if not (select rolsuper from pg_roles where rolname = current_user) then
    execute format('grant create on schema %I to %I', v_schema, v_role);
  end if;

  insert into ferry.tenants (slug, tenant_key, role_name, schema_name)
  values (p_slug, coalesce(p_key, p_slug), v_role, v_schema)
  returning * into v_tenant;

  for v_table in select * from ferry.protected_tables loop
    perform ferry.check_key_distinct(v_table);
    perform ferry.admit_tenant(v_table, v_tenant);
  end loop;
  return v_tenant;
end
$$;

-- The tenant of that slug, or an error that says how to add it.
create or replace function ferry.tenant(p_slug text) returns ferry.tenants
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant ferry.tenants;
begin
  select * into v_tenant from ferry.tenants where slug = p_slug;
  if not found then
    raise exception 'unknown tenant %', quote_literal(p_slug)
      using errcode = '42704', hint = 'add it with: pgferry tenant add ' || coalesce(p_slug, '');
  end if;
  return v_tenant;
end
$$;

-- The tenant of a load: whose schema holds the load's tables and functions, and as whom its
-- compiled code runs.
create or replace function ferry.load_tenant(p_load bigint) returns ferry.tenants
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select t.* from ferry.tenants t join ferry.loads l on l.tenant_id = t.id where l.id = p_load
$$;

-- Roles that can use the table and would lose that use once RLS is enabled: every grantee
-- (PUBLIC included) except the owner, superusers, BYPASSRLS roles and pgferry's tenant roles.
-- None for a table that has RLS enabled already: enabling it again takes nothing from anyone.
create or replace function ferry.roles_losing_access(p_table regclass)
returns table (role_name text, privileges text)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  with grants as (
    select a.grantee, a.privilege_type
    from pg_class c cross join lateral aclexplode(c.relacl) a
    where c.oid = p_table
    union all
    -- column privileges (grant select (sku, name) …) give access to rows as well
    select a.grantee, a.privilege_type
    from pg_attribute t cross join lateral aclexplode(t.attacl) a
    where t.attrelid = p_table and t.attnum > 0 and not t.attisdropped
  )
  select coalesce(r.rolname::text, 'PUBLIC'),
         string_agg(distinct g.privilege_type, ', ' order by g.privilege_type)
  from grants g
  join pg_class c on c.oid = p_table
  left join pg_roles r on r.oid = g.grantee
  where not c.relrowsecurity
    and g.grantee <> c.relowner
    and g.privilege_type in ('SELECT', 'INSERT', 'UPDATE', 'DELETE')
    and (r.oid is null or not (r.rolsuper or r.rolbypassrls))
    and (r.oid is null or not pg_has_role(r.oid, ferry.tenant_group(), 'member'))
  group by 1
  order by 1
$$;

-- Refuses a tenant key that equals another tenant's once cast to a protected table's tenant
-- column ('042' and '42' are one integer): both tenants would see the same rows.
create or replace function ferry.check_key_distinct(p_table ferry.protected_tables) returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_clash   text;
  v_collate text := '';
begin
  -- Compared as the policies compare: the column's type and collation.
  select coalesce(' collate ' || quote_ident(n.nspname) || '.' || quote_ident(c.collname), '')
  into v_collate
  from pg_attribute a
  left join pg_collation c on c.oid = a.attcollation and a.attcollation <> 0
  left join pg_namespace n on n.oid = c.collnamespace
  where a.attrelid = format('%I.%I', p_table.schema_name, p_table.table_name)::regclass
    and a.attname = p_table.tenant_column;
  execute format(
    'select string_agg(a.slug || '' and '' || b.slug, ''; '')
     from ferry.tenants a join ferry.tenants b on a.id < b.id
     where a.tenant_key::%1$s%2$s = b.tenant_key::%1$s%2$s', p_table.tenant_type, v_collate)
  into v_clash;
  if v_clash is not null then
    raise exception 'tenants % have the same key in %.% once cast to %',
                    v_clash, p_table.schema_name, p_table.table_name, p_table.tenant_type
      using errcode = '23505';
  end if;
exception when data_exception then
  raise exception 'a tenant key is not a valid % for %.%: %', p_table.tenant_type, p_table.schema_name, p_table.table_name, sqlerrm
    using errcode = '22023', hint = 'give tenants keys of that type with: pgferry tenant add NAME --key VALUE';
end
$$;

-- Enables RLS on an application table and gives every tenant (present and future) its
-- policies. Refuses, naming them, when roles of the application would lose access, unless
-- each is kept (a pass-through policy for it) or the loss is accepted.
create or replace function ferry.protect_table(
  p_table         regclass,
  p_tenant_column name default 'tenant_id',
  p_keep_roles    name[] default '{}',
  p_accept_loss   boolean default false
) returns ferry.protected_tables
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_schema  name;
  v_name    name;
  v_type    text;
  v_group   name := ferry.ensure_tenant_group();
  v_losing  text[];
  v_kept    name[];
  v_row     ferry.protected_tables;
  v_tenant  ferry.tenants;
  v_before  boolean;
begin
  select n.nspname, c.relname into v_schema, v_name
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where c.oid = p_table and c.relkind in ('r', 'p');
  if v_name is null then
    raise exception '% is not a table', p_table using errcode = '42809';
  end if;

  select format_type(a.atttypid, a.atttypmod) into v_type
  from pg_attribute a
  where a.attrelid = p_table and a.attname = p_tenant_column and a.attnum > 0 and not a.attisdropped;
  if v_type is null then
    raise exception 'table %.% has no column %', v_schema, v_name, p_tenant_column
      using errcode = '42703',
            hint = 'name the tenant column with --column';
  end if;

  select array_agg(l.role_name) into v_losing
  from ferry.roles_losing_access(p_table) l
  where l.role_name <> all (coalesce(p_keep_roles, '{}')::text[]);
  if v_losing is not null and not p_accept_loss then
    raise exception 'enabling row-level security on %.% would lock out: %',
                    v_schema, v_name, array_to_string(v_losing, ', ')
      using errcode = '55000',
            detail = 'these roles can use the table today and have no policy that would let them keep doing so',
            hint = 'keep them with --keep-role ROLE (a pass-through policy), or accept with --lock-out';
  end if;

  for i in 1 .. coalesce(array_length(p_keep_roles, 1), 0) loop
    if p_keep_roles[i] <> 'PUBLIC' and not exists (select from pg_roles where rolname = p_keep_roles[i]) then
      raise exception 'role % does not exist', p_keep_roles[i] using errcode = '42704';
    end if;
  end loop;

  -- Protected again: what the table was before the first time (uninstall restores that).
  select coalesce(passthrough_roles, '{}'), rls_before into v_kept, v_before
  from ferry.protected_tables where schema_name = v_schema and table_name = v_name;
  if not found then
    select relrowsecurity into v_before from pg_class where oid = p_table;
  end if;
  v_kept := array(select distinct unnest(coalesce(v_kept, '{}') || coalesce(p_keep_roles, '{}')) order by 1);
  if cardinality(v_kept) > 0 then
    execute format('drop policy if exists pgferry_keep on %I.%I', v_schema, v_name);
    execute format(
      'create policy pgferry_keep on %I.%I as permissive for all to %s using (true) with check (true)',
      v_schema, v_name,
      (select string_agg(case when k = 'PUBLIC' then 'public' else quote_ident(k) end, ', ') from unnest(v_kept) k));
  end if;

  execute format('alter table %I.%I enable row level security', v_schema, v_name);

  delete from ferry.protected_tables where schema_name = v_schema and table_name = v_name;
  insert into ferry.protected_tables (schema_name, table_name, tenant_column, tenant_type, passthrough_roles, rls_before)
  values (v_schema, v_name, p_tenant_column, v_type, v_kept, v_before)
  returning * into v_row;

  perform ferry.check_key_distinct(v_row);
  for v_tenant in select * from ferry.tenants loop
    perform ferry.admit_tenant(v_row, v_tenant);
  end loop;
  return v_row;
end
$$;
