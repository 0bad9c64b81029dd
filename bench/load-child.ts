// One pgferry load in a process of its own, so that its peak memory (maxRSS) is the load's
// alone. bench/run.ts starts it with `node --import tsx` and reads one JSON line from stdout.
// usage: node --import tsx bench/load-child.ts '{"url": …, "file": …, "tenant": …, "mapping": …}'
// With "baseline": true it only opens the pool and runs `select 1`: the memory of the process
// itself (Node, tsx, pgferry's modules) that every load's figure includes.
import { load, openDatabase } from '../src/index.js';

export interface ChildRequest {
  url: string;
  file: string;
  tenant: string;
  mapping: string;
  /** Parallel COPY streams while staging (load's `jobs`); its default when absent. */
  jobs?: number;
  baseline?: boolean;
}

export interface ChildReport {
  /** Seconds spent in load() (not in starting the process). */
  seconds: number;
  maxRssKb: number;
  status: string;
  counts?: Record<string, number>;
  timings?: Record<string, number>;
  error?: string;
}

const request = JSON.parse(process.argv[2] ?? '{}') as ChildRequest;
const db = await openDatabase({ url: request.url, migrate: false });
let report: ChildReport;
try {
  const started = performance.now();
  if (request.baseline) {
    await db.pool.query('select 1');
    report = { seconds: (performance.now() - started) / 1000, maxRssKb: 0, status: 'baseline' };
  } else {
    const result = await load(db.pool, {
      file: request.file,
      tenant: request.tenant,
      mapping: request.mapping,
      jobs: request.jobs,
      force: true,
    });
    report = {
      seconds: (performance.now() - started) / 1000,
      maxRssKb: 0,
      status: result.status,
      counts: { ...result.counts },
      timings: result.timings as Record<string, number>,
      error: result.error,
    };
  }
} finally {
  await db.close();
}
report.maxRssKb = process.resourceUsage().maxRSS;
process.stdout.write(`${JSON.stringify(report)}\n`);
