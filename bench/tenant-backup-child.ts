// One tenant backup or restore in a process of its own, so that its peak memory (maxRSS) is
// its alone. bench/tenant-backup.ts starts it with `node --import tsx` and reads one JSON line.
// usage: node --import tsx bench/tenant-backup-child.ts '{"url": …, "action": "backup", "tenant": …, "file": …}'
import { backupTenant, openDatabase, restoreTenant } from '../src/index.js';

export interface TenantBackupRequest {
  url: string;
  action: 'backup' | 'restore' | 'baseline';
  tenant: string;
  file: string;
}

export interface TenantBackupReport {
  seconds: number;
  maxRssKb: number;
  rows: number;
}

const request = JSON.parse(process.argv[2] ?? '{}') as TenantBackupRequest;
const db = await openDatabase({ url: request.url, migrate: false });
let report: TenantBackupReport;
try {
  const started = performance.now();
  let rows = 0;
  if (request.action === 'backup') {
    rows = (await backupTenant(db.pool, { tenant: request.tenant, output: request.file })).rows;
  } else if (request.action === 'restore') {
    rows = (await restoreTenant(db.pool, { input: request.file })).rows;
  } else {
    await db.pool.query('select 1');
  }
  report = { seconds: (performance.now() - started) / 1000, maxRssKb: 0, rows };
} finally {
  await db.close();
}
report.maxRssKb = process.resourceUsage().maxRSS;
process.stdout.write(`${JSON.stringify(report)}\n`);
