// Exports a query's rows for tenant acme in a process of its own and prints its peak memory
// (maxRSS), so a test can see whether client memory grows with the number of rows.
// usage: node measure-export.mjs DATABASE_URL QUERY FORMAT OUTPUT_FILE
import pg from 'pg';

import { exportRows } from '../../dist/index.js';

const [url, query, format, output] = process.argv.slice(2);
const pool = new pg.Pool({ connectionString: url, max: 2 });
const result = await exportRows(pool, { tenant: 'acme', query, format, output });
await pool.end();
process.stdout.write(JSON.stringify({ rows: result.rows, maxRssKb: process.resourceUsage().maxRSS }));
