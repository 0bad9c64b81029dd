// The public API: everything the CLI does, a Node program can do too.
export { type AuditEntry, listAudit, recordAudit } from './audit.js';
export {
  getLoad,
  listLoads,
  listMappings,
  listRejects,
  type LoadSummary,
  type MappingVersion,
  rejectedLines,
  type RejectRow,
} from './catalog.js';
export { main } from './cli/main.js';
export {
  type DashboardLoadDetail,
  dashboardLoadDetail,
  type Reconciliation,
} from './dashboard/dashboard-load-detail.js';
export { type DashboardLoad } from './dashboard/dashboard-load-query.js';
export { dashboardLoads, type DashboardLoadsOptions } from './dashboard/dashboard-loads.js';
export { type DashboardPlanRun, dashboardPlans } from './dashboard/dashboard-plans.js';
export {
  type DashboardReject,
  dashboardRejects,
  type DashboardRejectsOptions,
  type DashboardRejectsPage,
} from './dashboard/dashboard-rejects.js';
export { type DashboardOptions, type RunningDashboard, startDashboard } from './dashboard/dashboard-server.js';
export { type DashboardSync, dashboardSyncs } from './dashboard/dashboard-syncs.js';
export { type DashboardWorkers, dashboardWorkers } from './dashboard/dashboard-workers.js';
export { NotFound } from './dashboard/not-found.js';
export { rejectsCsvLines } from './dashboard/rejects-csv.js';
export {
  type Database,
  ensureDatabase,
  openDatabase,
  type OpenDatabaseOptions,
  withTransaction,
} from './db/database.js';
export { type EmbeddedServer, type EmbeddedServerOptions, startEmbeddedServer } from './db/embedded-server.js';
export { migrate, type MigrateResult } from './db/migrate.js';
export { migrateDatabase } from './db/migrate-database.js';
export { detectPoolerMode, type PoolerMode, type PoolerModeReport, requireSessionPooling } from './db/pooler-mode.js';
export { demo } from './demo.js';
export { doctor, type DoctorFinding } from './doctor/doctor.js';
export { describeError, EXIT, PgferryError } from './errors.js';
export { type ExportColumn, type ValueKind } from './export/export-column.js';
export { EXPORT_FORMATS, type ExportFormat } from './export/export-format.js';
export { type ExportOptions, type ExportResult, exportRows } from './export/export-rows.js';
export { neutraliseFormula } from './export/formula-neutralise.js';
export { enqueueSync } from './jobs/enqueue-sync.js';
export { type RunningWorker, startWorker, type WorkerOptions } from './jobs/worker.js';
export { cancelLoad, type CancelOptions, type CancelResult } from './load/cancel-load.js';
export { load } from './load/load.js';
export { resume, type ResumeOptions, type ResumeResult } from './load/resume.js';
export { MAX_JOBS } from './load/staging-jobs.js';
export type { LoadCounts, LoadEvent, LoadOptions, LoadResult, RejectReason } from './load/types.js';
export { validate, type ValidateOptions } from './load/validate.js';
export { type Mapping, type MappingCheck, parseMapping, readMapping } from './mappings/mapping-file.js';
export { showMapping } from './mappings/show-mapping.js';
export { type Plan, readPlan } from './plans/plan-file.js';
export { type PlanRunState, planStatus, type PlanStepState } from './plans/plan-run.js';
export { type PlanEvent, runPlan, type RunPlanOptions, type RunPlanResult } from './plans/run-plan.js';
export { type Project, readProject, type SyncConfig } from './project/project-file.js';
export { type PruneResult, pruneUndo } from './prune.js';
export {
  type FinalSnapshot,
  followLoad,
  type FollowOptions,
  type LoadProgress,
  type LoadSnapshot,
} from './report/follow-load.js';
export { writeRejectsCsv } from './report/write-rejects-csv.js';
export { rollback, type RollbackConflict, type RollbackOptions, type RollbackResult } from './rollback.js';
export { type FileInspection, inspectFile } from './sources/inspect-file.js';
export { listSyncs, type SyncListing } from './syncs/list-syncs.js';
export { type PauseOptions, pauseSync, unpauseSync } from './syncs/pause-sync.js';
export { runSync, type SyncOptions, type SyncResult } from './syncs/run-sync.js';
export type { BackupHeader, BackupTable, BackupTableSum, BackupTrailer } from './tenant-backup/backup-manifest.js';
export { type BackupOptions, type BackupResult, backupTenant } from './tenant-backup/backup-tenant.js';
export {
  backupTenantToFolder,
  type FolderBackupOptions,
  type FolderBackupResult,
} from './tenant-backup/backup-to-folder.js';
export { copyTenant, type CopyTenantOptions, type CopyTenantResult } from './tenant-backup/copy-tenant.js';
export { planPurge, type PurgeItem, type PurgeResult, purgeTenant } from './tenant-backup/purge-tenant.js';
export {
  type RestoredTable,
  type RestoreOptions,
  type RestoreResult,
  restoreTenant,
} from './tenant-backup/restore-tenant.js';
export { type RestoreConflict, rollbackRestore, type RollbackRestoreResult } from './tenant-backup/rollback-restore.js';
export { verifyBackup, type VerifyResult } from './tenant-backup/verify-backup.js';
export { addTenant, listTenants, type ProtectOptions, protectTable, type Tenant } from './tenants.js';
export { planUninstall, uninstall, type UninstallItem, type UninstallPlan, type UninstallResult } from './uninstall.js';
