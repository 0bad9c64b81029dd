-- Cleanup: what a load leaves in its tenant's schema, dropped once the load has ended (unless
-- --keep-staging), failed before it could start, or was cancelled.

-- Drops the load's tables (stage, mapped, work, rejects, duplicates, plan) and its compiled
-- functions. Every drop is `if exists`: it runs after whichever step the load got to, and
-- runs again without harm.
create or replace function ferry.cleanup_load(p_load bigint) returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_tenant ferry.tenants := ferry.load_tenant(p_load);
  v_kind   text;
begin
  foreach v_kind in array array['stage', 'mapped', 'work', 'rejects', 'duplicates', 'plan'] loop
    execute format('drop table if exists %s', ferry.quoted_object(v_tenant.schema_name, v_kind, p_load));
  end loop;
  execute format('drop function if exists %I.%I()', v_tenant.schema_name, 'transform_' || p_load);
  execute format('drop function if exists %I.%I()', v_tenant.schema_name, 'plan_' || p_load);
  execute format('drop function if exists %I.%I(bigint, bigint)', v_tenant.schema_name, 'promote_' || p_load);
  execute format('drop function if exists %I.%I(boolean, boolean)', v_tenant.schema_name, 'bulk_' || p_load);
  -- Whatever large objects the tenant's code left (transform unlinks its own; this is for a
  -- load cleaned up after an interruption, or cancelled).
  perform ferry.unlink_tenant_large_objects(v_tenant);
end
$$;
