// pgferry's memory benchmark for every format (issue 4): the same clean catalog as CSV,
// NDJSON, XML and XLSX, at two sizes each, loaded by pgferry in a child process whose peak
// RSS is read from process.resourceUsage(). Memory must stay flat as a file grows: the
// readers stream. Figures go to bench/RESULTS-formats.md.
//
// usage: npx tsx bench/formats.ts [--sizes 250000,1000000] [--xlsx-sizes 50000,200000]
//                                 [--database-url URL] [--out bench/RESULTS-formats.md]
import { once } from 'node:events';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { rename, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import { parseArgs } from 'node:util';

import { parse } from 'csv-parse';
import ExcelJS from 'exceljs';
import pg from 'pg';

import { escapeXmlText } from '../src/export/xml-format.js';
import { encodeXmlName } from '../src/sources/file/xml/xml-reader.js';
import { DATA_DIR, MAPPING, openBenchServer, ROOT, runChild, setUp, TARGET, TENANT } from './bench-setup.js';
import { CATALOG_COLUMNS, ensureCatalog, GENERATOR_VERSION } from './generate-catalog.js';
import type { ChildReport } from './load-child.js';

type Format = 'csv' | 'ndjson' | 'xml' | 'xlsx';

interface Row {
  format: Format;
  rows: number;
  bytes: number;
  report: ChildReport;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sizes: { type: 'string', default: '250000,1000000' },
      'xlsx-sizes': { type: 'string', default: '50000,200000' },
      'database-url': { type: 'string', default: process.env.DATABASE_URL },
      out: { type: 'string', default: path.join(ROOT, 'bench', 'RESULTS-formats.md') },
    },
  });
  const sizes = values.sizes.split(',').map(Number);
  const xlsxSizes = values['xlsx-sizes'].split(',').map(Number);
  const { url, close } = await openBenchServer('formats', values['database-url'], console.log);
  try {
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    try {
      await setUp(pool);
      const baseline = await runChild({ url, file: '', tenant: TENANT, mapping: '', baseline: true });
      const results: Row[] = [];
      const plan: [Format, number][] = [
        ...sizes.flatMap((rows) => (['csv', 'ndjson', 'xml'] as const).map((f): [Format, number] => [f, rows])),
        ...xlsxSizes.map((rows): [Format, number] => ['xlsx', rows]),
      ];
      for (const [format, rows] of plan) {
        const file = await catalogAs(format, rows);
        await pool.query(`truncate ${TARGET}`);
        const report = await runChild({ url, file, tenant: TENANT, mapping: MAPPING });
        if (report.status !== 'succeeded') throw new Error(`${format} ${rows}: ${report.status} ${report.error ?? ''}`);
        if (report.counts?.inserted !== rows) throw new Error(`${format} ${rows}: inserted ${report.counts?.inserted}`);
        const { size } = await stat(file);
        results.push({ format, rows, bytes: size, report });
        console.log(
          `${format} ${rows} rows: ${report.seconds.toFixed(1)} s, peak RSS ${Math.round(report.maxRssKb / 1024)} MB`,
        );
      }
      await writeFile(values.out, markdown(results, baseline.maxRssKb));
      console.log(`results written to ${path.relative(ROOT, values.out)}`);
    } finally {
      await pool.end();
    }
  } finally {
    await close();
  }
}

/** The clean catalog of `rows` rows in a format, made from its CSV once and kept in bench/data. */
async function catalogAs(format: Format, rows: number): Promise<string> {
  const csv = (await ensureCatalog(DATA_DIR, { rows, seed: 1, dirty: 0 })).file;
  if (format === 'csv') return csv;
  // Named after the generator's version too: a new generator makes new files.
  const file = csv.replace(/\.csv$/, `-g${GENERATOR_VERSION}.${format}`);
  if (existsSync(file)) return file;
  console.log(`writing ${path.relative(ROOT, file)}`);
  const partial = `${file}.partial`;
  const records = createReadStream(csv).pipe(parse({ columns: true }));
  if (format === 'xlsx') {
    const workbook = new ExcelJS.stream.xlsx.WorkbookWriter({ filename: partial, useSharedStrings: true });
    const sheet = workbook.addWorksheet('Catalog');
    sheet.addRow([...CATALOG_COLUMNS]).commit();
    for await (const record of records) {
      sheet.addRow(CATALOG_COLUMNS.map((c) => (record as Record<string, string>)[c])).commit();
    }
    sheet.commit();
    await workbook.commit();
  } else {
    const out = createWriteStream(partial);
    const write = async (text: string) => {
      if (!out.write(text)) await once(out, 'drain');
    };
    if (format === 'xml') await write('<?xml version="1.0" encoding="UTF-8"?>\n<catalog>\n');
    for await (const record of records) {
      const r = record as Record<string, string>;
      if (format === 'ndjson') await write(`${JSON.stringify(r)}\n`);
      else {
        const fields = CATALOG_COLUMNS.map((c) => `<${encodeXmlName(c)}>${escapeXmlText(r[c])}</${encodeXmlName(c)}>`);
        await write(`  <item>${fields.join('')}</item>\n`);
      }
    }
    if (format === 'xml') await write('</catalog>\n');
    out.end();
    await finished(out);
  }
  await rename(partial, file);
  return file;
}

function markdown(results: Row[], baselineKb: number): string {
  const mb = (kb: number) => `${Math.round(kb / 1024)} MB`;
  const lines = [
    '# pgferry formats benchmark: client memory per format',
    '',
    `Written by \`npm run bench:formats\` on ${new Date().toISOString().slice(0, 10)} ` +
      `(${os.cpus().length} cores, Node ${process.version}). The same clean catalog (bench/generate-catalog.ts) ` +
      'in each format, loaded with no options (format detected) into an empty target. Peak RSS is the ' +
      `whole client process (Node, tsx and pgferry's modules alone: ${mb(baselineKb)}).`,
    '',
    '| format | rows | file | load | rows/s | peak RSS |',
    '|---|--:|--:|--:|--:|--:|',
    ...results.map(
      (r) =>
        `| ${r.format} | ${r.rows.toLocaleString('en')} | ${(r.bytes / 1e6).toFixed(0)} MB | ` +
        `${r.report.seconds.toFixed(1)} s | ${Math.round(r.rows / r.report.seconds).toLocaleString('en')} | ` +
        `${mb(r.report.maxRssKb)} |`,
    ),
    '',
  ];
  return lines.join('\n');
}

main().catch((error: unknown) => {
  console.error(`bench:formats: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
