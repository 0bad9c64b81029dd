// Loads one file in a process of its own and prints its peak memory (maxRSS) with the
// result, so a test can see whether client memory grows with the file.
// usage: node measure-load.mjs DATABASE_URL FILE TENANT MAPPING_FILE
import pg from 'pg';

import { load } from '../../dist/index.js';

const [url, file, tenant, mapping] = process.argv.slice(2);
const pool = new pg.Pool({ connectionString: url, max: 4 });
let peakHeap = 0;
const result = await load(pool, {
  file,
  tenant,
  mapping,
  force: true,
  onEvent: () => {
    peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
  },
});
await pool.end();
process.stdout.write(
  JSON.stringify({ maxRssKb: process.resourceUsage().maxRSS, peakHeap, status: result.status, counts: result.counts }),
);
