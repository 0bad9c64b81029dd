// The public API: everything the CLI does, a Node program can do too.
export { openDatabase, withTransaction, type Database, type OpenDatabaseOptions } from './db/database.js';
export { startEmbeddedServer, type EmbeddedServer, type EmbeddedServerOptions } from './db/embedded-server.js';
export { migrate } from './db/migrate.js';
export { load, type LoadCounts, type LoadEvent, type LoadOptions, type LoadResult, type RejectReason } from './load.js';
export { addTenant, listTenants, protectTable, type ProtectOptions, type Tenant } from './tenants.js';
export { getLoad, listLoads, listMappings, listRejects, rejectedLines, type LoadSummary, type RejectRow } from './catalog.js';
export { parseMapping, readMapping, type Mapping, type MappingCheck } from './mappings/mapping-file.js';
export { demo } from './demo.js';
export { describeError, EXIT, PgferryError } from './errors.js';
export { main } from './cli/main.js';
