import { Command } from 'commander';

import { textTable } from '../report/text-table.js';
import { addTenant, listTenants, protectTable } from '../tenants.js';
import { type GlobalOptions, stdio, withDatabase } from './context.js';
import { addTenantLifeCommands } from './tenant-life-commands.js';

export function tenantCommand(global: () => GlobalOptions): Command {
  const tenant = new Command('tenant').description(
    'add tenants, protect tables with row-level security; back up, restore, copy and purge a tenant',
  );

  tenant
    .command('add')
    .description('add a tenant: a NOLOGIN role, a staging schema, and its policies on protected tables')
    .argument('<name>', 'tenant name: a-z first, then up to 39 of a-z 0-9 _')
    .option('--key <value>', "value written into the target's tenant column (default: the name)")
    .option('--json', 'print the tenant as JSON')
    .addHelpText('after', '\nExamples:\n  pgferry tenant add acme\n  pgferry tenant add globex --key 42')
    .action(async (name: string, opts) => {
      const added = await withDatabase(global(), (db) => addTenant(db.pool, name, opts.key));
      stdio.out(
        opts.json
          ? JSON.stringify(added, null, 2)
          : `tenant ${added.slug} added (role ${added.roleName}, staging schema ${added.schemaName})`,
      );
    });

  tenant
    .command('list')
    .description('list tenants')
    .option('--json', 'print as JSON')
    .action(async (opts) => {
      const tenants = await withDatabase(global(), (db) => listTenants(db.pool));
      stdio.out(
        opts.json
          ? JSON.stringify(tenants, null, 2)
          : tenants.length === 0
            ? 'no tenants yet: pgferry tenant add NAME'
            : textTable(
                ['tenant', 'key', 'role', 'staging schema'],
                tenants.map((t) => [t.slug, t.tenantKey, t.roleName, t.schemaName]),
              ),
      );
    });

  tenant
    .command('protect')
    .description('enable row-level security on a table, with a policy per tenant keyed on its role')
    .argument('<table>', 'schema-qualified table, e.g. app.products')
    .option('--column <name>', 'column holding the tenant', 'tenant_id')
    .option('--keep-role <role...>', 'application role(s) that keep full access (a pass-through policy)')
    .option('--lock-out', 'accept that application roles without a policy lose access')
    .addHelpText(
      'after',
      `
Enabling RLS denies every role that has no policy. If roles of your application can use the
table today, protect refuses and names them: keep them with --keep-role, or accept with
--lock-out. The table's owner, superusers and BYPASSRLS roles are not affected.

Examples:
  pgferry tenant protect app.products
  pgferry tenant protect app.products --keep-role app_rw app_ro
  pgferry tenant protect crm.contacts --column customer_id`,
    )
    .action(async (table: string, opts) => {
      const row = await withDatabase(global(), (db) =>
        protectTable(db.pool, table, { column: opts.column, keepRoles: opts.keepRole, lockOut: opts.lockOut }),
      );
      const kept = row.passthrough_roles.length
        ? `; roles keeping full access: ${row.passthrough_roles.join(', ')}`
        : '';
      stdio.out(`${row.schema_name}.${row.table_name} is protected: tenant column ${row.tenant_column}${kept}`);
    });
  addTenantLifeCommands(tenant, global);
  return tenant;
}
