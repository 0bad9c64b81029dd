// The public API: everything the CLI does, a Node program can do too.
export { type AuditEntry, listAudit, recordAudit } from './audit.js';
export {
  getLoad,
  listLoads,
  listMappings,
  listRejects,
  type LoadSummary,
  rejectedLines,
  type RejectRow,
} from './catalog.js';
export { main } from './cli/main.js';
export {
  type Database,
  ensureDatabase,
  openDatabase,
  type OpenDatabaseOptions,
  withTransaction,
} from './db/database.js';
export { type EmbeddedServer, type EmbeddedServerOptions, startEmbeddedServer } from './db/embedded-server.js';
export { migrate } from './db/migrate.js';
export { demo } from './demo.js';
export { describeError, EXIT, PgferryError } from './errors.js';
export { type ExportColumn, type ValueKind } from './export/export-column.js';
export { EXPORT_FORMATS, type ExportFormat } from './export/export-format.js';
export { type ExportOptions, type ExportResult, exportRows } from './export/export-rows.js';
export { neutraliseFormula } from './export/formula-neutralise.js';
export { load } from './load/load.js';
export { resume, type ResumeOptions, type ResumeResult } from './load/resume.js';
export { MAX_JOBS } from './load/staging-jobs.js';
export type { LoadCounts, LoadEvent, LoadOptions, LoadResult, RejectReason } from './load/types.js';
export { type Mapping, type MappingCheck, parseMapping, readMapping } from './mappings/mapping-file.js';
export { type PruneResult, pruneUndo } from './prune.js';
export { rollback, type RollbackConflict, type RollbackOptions, type RollbackResult } from './rollback.js';
export { addTenant, listTenants, type ProtectOptions, protectTable, type Tenant } from './tenants.js';
