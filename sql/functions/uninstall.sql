-- `pgferry uninstall`: everything pgferry made in this database and in the cluster, as a list
-- of statements that remove it, and what stands in the way of removing it. The application's
-- tables and rows stay: pgferry takes back only its policies, the row-level security it turned
-- on, the privileges it gave its roles, its schemas and its roles.
--
-- Roles belong to the whole cluster: only this database's instance's (pgf_<instance>_…) are
-- listed, never another database's pgferry's. The caller reads the list, then runs its
-- statements in order in one transaction (DROP ROLE is transactional too); ferry, the last
-- schema dropped, takes these functions with it.

-- The schemas pgferry made here: ferry, ferry_util, one per tenant, and graphile-worker's when
-- only pgferry's jobs ever ran in it (an application's own graphile-worker keeps its schema).
create or replace function ferry.uninstall_schemas() returns name[]
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_schemas name[];
begin
  select array_agg(nspname order by nspname) into v_schemas
  from pg_namespace
  where nspname in ('ferry', 'ferry_util')
     or nspname in (select schema_name from ferry.tenants);
  if to_regclass('graphile_worker._private_tasks') is not null
     and ferry.uninstall_foreign_tasks() is null then
    v_schemas := v_schemas || 'graphile_worker'::name;
  end if;
  return v_schemas;
end
$$;

-- The tasks in graphile-worker's schema that are not pgferry's, comma-separated; NULL if none.
create or replace function ferry.uninstall_foreign_tasks() returns text
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tasks text;
begin
  if to_regclass('graphile_worker._private_tasks') is null then
    return null;
  end if;
  execute $q$select string_agg(identifier, ', ' order by identifier)
             from graphile_worker._private_tasks where left(identifier, 8) <> 'pgferry_'$q$
  into v_tasks;
  return v_tasks;
end
$$;

-- This instance's roles (pgf_<instance>_…), the tenant group last: it is their group.
create or replace function ferry.uninstall_roles() returns table (oid oid, role_name name)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select r.oid, r.rolname
  from pg_roles r, ferry.settings s
  where left(r.rolname, length('pgf_' || s.instance_id || '_')) = 'pgf_' || s.instance_id || '_'
  order by r.rolname = ferry.tenant_group(), r.rolname
$$;

-- What stands in the way, one line each; none when uninstall can go ahead:
-- - objects outside pgferry's schemas that depend on something inside them (a view over
--   ferry.loads, a foreign key to a tenant's table): dropping the schemas would drop them too;
-- - objects outside pgferry's schemas that one of its roles owns (a role that owns something
--   cannot be dropped, and pgferry does not drop what is not its own);
-- - policies not made by pgferry that name one of its roles.
-- The first object outside in any chain of dependencies depends on one inside directly, so
-- looking one step out is enough. An object with no schema of its own (a column default, a
-- trigger) is inside when it is part of something inside.
create or replace function ferry.uninstall_blockers() returns setof text
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  with schemas as (
    select n.oid from pg_namespace n where n.nspname = any (ferry.uninstall_schemas())
  ), inside as (
    select 'pg_namespace'::regclass as classid, s.oid as objid from schemas s
    union all select 'pg_class'::regclass, c.oid from pg_class c where c.relnamespace in (select oid from schemas)
    union all select 'pg_proc'::regclass, p.oid from pg_proc p where p.pronamespace in (select oid from schemas)
    union all select 'pg_type'::regclass, t.oid from pg_type t where t.typnamespace in (select oid from schemas)
  ), dependents as (
    select distinct d.classid, d.objid, d.objsubid, d.refclassid, d.refobjid
    from pg_depend d
    join inside i on i.classid = d.refclassid and i.objid = d.refobjid
    where d.deptype in ('n', 'a')
  )
  select format('%s depends on %s',
                -- a view, rather than its rule
                coalesce((select pg_describe_object('pg_class'::regclass, r.ev_class, 0)
                          from pg_rewrite r where d.classid = 'pg_rewrite'::regclass and r.oid = d.objid),
                         pg_describe_object(d.classid, d.objid, d.objsubid)),
                pg_describe_object(d.refclassid, d.refobjid, 0))
  from dependents d
  cross join lateral pg_identify_object(d.classid, d.objid, d.objsubid) o
  where not exists (select from inside i where i.classid = d.classid and i.objid = d.objid)
    and case when o.schema is not null then o.schema <> all (ferry.uninstall_schemas())
             -- a part of an object (a column default, a trigger) goes with what it is part of
             else not exists (select from pg_depend p join inside i on i.classid = p.refclassid and i.objid = p.refobjid
                              where p.classid = d.classid and p.objid = d.objid and p.deptype in ('a', 'i')) end
  union all
  select format('%s is owned by %s', pg_describe_object(d.classid, d.objid, d.objsubid), r.role_name)
  from pg_shdepend d
  join ferry.uninstall_roles() r on r.oid = d.refobjid
  cross join lateral pg_identify_object(d.classid, d.objid, d.objsubid) o
  where d.deptype = 'o'
    and d.dbid = (select oid from pg_database where datname = current_database())
    and (o.schema is null or o.schema <> all (ferry.uninstall_schemas()))
  union all
  select format('%s names role %s', pg_describe_object(d.classid, d.objid, d.objsubid), r.role_name)
  from pg_shdepend d
  join ferry.uninstall_roles() r on r.oid = d.refobjid
  join pg_policy p on d.classid = 'pg_policy'::regclass and p.oid = d.objid
  where d.deptype = 'r'
    and d.dbid = (select oid from pg_database where datname = current_database())
    and not ferry.is_pgferry_policy(p.polname)
  order by 1
$$;

-- '3 tables', '1 table'; NULL for none.
create or replace function ferry.uninstall_count(p_n bigint, p_one text, p_many text) returns text
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
  select case when p_n = 1 then '1 ' || p_one when p_n > 1 then p_n || ' ' || p_many end
$$;

-- The names protect_table and admit_tenant give the policies they create.
create or replace function ferry.is_pgferry_policy(p_name name) returns boolean
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
  select p_name = 'pgferry_keep' or p_name ~ '^pgferry_(tenant|only)_[a-z][a-z0-9_]*$'
$$;

-- The list, in the order its statements run. A row without a statement is something kept,
-- and its detail says why. Kinds, in order:
--   policy       pgferry's policies on protected tables (and any other of its named policies)
--   row security turned off where pgferry turned it on, or kept on, saying why
--   privilege    privileges of pgferry's roles on the application's objects (tables, their
--                sequences, their schemas), revoked
--   jobs         pgferry's jobs in a graphile-worker schema that is kept
--   schema       dropped with everything in it
--   role         this instance's roles; one that a database cloned from this one still uses
--                is kept
create or replace function ferry.uninstall_plan()
returns table (kind text, object text, detail text, statement text)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_schemas name[] := ferry.uninstall_schemas();
  v_db      oid := (select oid from pg_database where datname = current_database());
  v_tasks   text := ferry.uninstall_foreign_tasks();
begin
  return query
  select 'policy', format('%s on %I.%I', quote_ident(p.polname), n.nspname, c.relname),
         'to ' || coalesce((select string_agg(coalesce(r.rolname::text, 'public'), ', ' order by r.rolname)
                            from unnest(p.polroles) x left join pg_roles r on r.oid = x), ''),
         format('drop policy %I on %I.%I', p.polname, n.nspname, c.relname)
  from pg_policy p
  join pg_class c on c.oid = p.polrelid
  join pg_namespace n on n.oid = c.relnamespace
  where ferry.is_pgferry_policy(p.polname)
    and n.nspname <> all (v_schemas)
    and ((n.nspname, c.relname) in (select schema_name, table_name from ferry.protected_tables)
         or p.polroles && array(select oid from ferry.uninstall_roles()))
  order by n.nspname, c.relname, p.polname;

  -- Row security: off again where pgferry turned it on and no policy of the application is
  -- left; on where it was on before, or where the application's own policies need it.
  return query
  with tables as (
    select pt.*, c.oid as relid, c.relrowsecurity,
           (select string_agg(quote_ident(p.polname), ', ' order by p.polname)
            from pg_policy p where p.polrelid = c.oid and not ferry.is_pgferry_policy(p.polname)) as own_policies
    from ferry.protected_tables pt
    join pg_namespace n on n.nspname = pt.schema_name
    join pg_class c on c.relnamespace = n.oid and c.relname = pt.table_name
  )
  select 'row security', format('%I.%I', t.schema_name, t.table_name),
         case
           when t.rls_before then 'stays enabled: it was before pgferry protected the table'
           when t.own_policies is not null then
             format('stays enabled: the table has policies of its own (%s)', t.own_policies)
             || case when cardinality(t.passthrough_roles) > 0
                     then format('; %s, kept by pgferry''s pass-through policy, keep only what those allow',
                                 array_to_string(t.passthrough_roles, ', '))
                     else '' end
           when t.rls_before is null then
             'disabled: no policy is left on it (pgferry did not record whether it was enabled before)'
           else 'disabled: pgferry enabled it'
         end,
         case when not coalesce(t.rls_before, false) and t.own_policies is null
              then format('alter table %I.%I disable row level security', t.schema_name, t.table_name) end
  from tables t
  where t.relrowsecurity
  order by t.schema_name, t.table_name;

  -- Privileges pgferry's roles hold outside its schemas, from the catalog PostgreSQL itself
  -- checks before it drops a role. REVOKE ALL on a table takes its column privileges too.
  return query
  with grants as (
    select distinct d.classid, d.objid, r.role_name
    from pg_shdepend d
    join ferry.uninstall_roles() r on r.oid = d.refobjid
    where d.deptype = 'a' and d.dbid in (v_db, 0)
      and not (d.classid = 'pg_database'::regclass and d.objid <> v_db)
  )
  select 'privilege', o.identity,
         format('%s: %s', g.role_name, coalesce(
           (select string_agg(distinct a.privilege_type, ', ')
            from (select c.relacl as acl from pg_class c where g.classid = 'pg_class'::regclass and c.oid = g.objid
                  union all
                  select n.nspacl from pg_namespace n where g.classid = 'pg_namespace'::regclass and n.oid = g.objid) x
            cross join lateral aclexplode(x.acl) a
            where a.grantee = (select oid from pg_roles where rolname = g.role_name)),
           'privileges')),
         format('revoke all on %s %s from %I',
                case when o.type in ('view', 'materialized view', 'foreign table') then 'table'
                     when o.type = 'foreign-data wrapper' then 'foreign data wrapper'
                     when o.type = 'server' then 'foreign server'
                     else o.type end,
                o.identity, g.role_name)
  from grants g
  cross join lateral pg_identify_object(g.classid, g.objid, 0) o
  where (o.schema is null or o.schema <> all (v_schemas))
    and not (o.type = 'schema' and o.identity = any (v_schemas))
  order by o.identity, g.role_name;

  if to_regclass('graphile_worker._private_tasks') is not null and v_tasks is not null then
    return query
    select 'jobs', 'graphile_worker',
           format('the schema stays (it has tasks other than pgferry''s: %s); pgferry''s jobs are deleted', v_tasks),
           $q$delete from graphile_worker._private_jobs
              where task_id in (select id from graphile_worker._private_tasks where left(identifier, 8) = 'pgferry_')$q$;
  end if;

  return query
  select 'schema', n.nspname::text,
         concat_ws(', ',
           ferry.uninstall_count(k.tables, 'table', 'tables'),
           ferry.uninstall_count(k.sequences, 'sequence', 'sequences'),
           ferry.uninstall_count(k.views, 'view', 'views'),
           ferry.uninstall_count(k.functions, 'function', 'functions'),
           case when n.nspname = 'ferry' then
             'the catalog of ' || concat_ws(', ',
               coalesce(ferry.uninstall_count((select count(*) from ferry.tenants), 'tenant', 'tenants'), 'no tenants'),
               ferry.uninstall_count((select count(*) from ferry.protected_tables), 'protected table', 'protected tables'),
               ferry.uninstall_count((select count(*) from ferry.mappings), 'mapping', 'mappings'),
               ferry.uninstall_count((select count(*) from ferry.loads), 'load', 'loads')) end,
           (select 'of tenant ' || t.slug from ferry.tenants t where t.schema_name = n.nspname)),
         format('drop schema %I cascade', n.nspname)
  from pg_namespace n
  cross join lateral (
    select count(*) filter (where c.relkind in ('r', 'p')) as tables,
           count(*) filter (where c.relkind = 'S') as sequences,
           count(*) filter (where c.relkind in ('v', 'm')) as views,
           (select count(*) from pg_proc p where p.pronamespace = n.oid) as functions
    from pg_class c where c.relnamespace = n.oid
  ) k
  where n.nspname = any (v_schemas)
  -- ferry last: its functions are what wrote this list.
  order by n.nspname = 'ferry', n.nspname;

  return query
  select 'role', r.role_name::text,
         case when other.names is not null
              then format('kept: database %s uses it too (cloned from this one?)', other.names)
              when r.role_name = ferry.tenant_group() then 'the group of the tenant roles'
              else coalesce('tenant ' || (select t.slug from ferry.tenants t where t.role_name = r.role_name),
                            'a role of this instance') end,
         case when other.names is null then format('drop role %I', r.role_name) end
  from ferry.uninstall_roles() r
  left join lateral (
    select string_agg(distinct db.datname, ', ') as names
    from pg_shdepend d join pg_database db on db.oid = d.dbid
    where d.refobjid = r.oid and d.dbid not in (v_db, 0)
  ) other on true
  order by r.role_name = ferry.tenant_group(), r.role_name;
end
$$;
