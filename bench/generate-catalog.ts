// Writes a deterministic supplier catalog CSV for the benchmark: about 100 bytes a row, quoted
// descriptions with commas, the odd embedded newline and doubled quote, and — at the rate
// asked — the dirt real supplier files have (bad numbers and dates, missing and duplicate
// keys, a broken quote, a wrong column count).
//
// usage: npx tsx bench/generate-catalog.ts --rows 1000000 [--dirty 0.01] [--seed 1]
//                                          [--changed 0.1] --out bench/data/catalog.csv
import { once } from 'node:events';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import { int, pick, prng, type Rand } from '../test/helpers/prng.js';

/** Bump when the rows written change, so that files cached in bench/data are made again. */
export const GENERATOR_VERSION = 1;

export const CATALOG_COLUMNS = [
  'sku',
  'name',
  'description',
  'price',
  'stock_quantity',
  'category',
  'supplier',
  'updated_at',
] as const;

export interface CatalogOptions {
  /** Data rows (records) after the header line. */
  rows: number;
  /** Fraction of rows made dirty, 0–1. (Default: 0.01) */
  dirty?: number;
  /** Seed of the PRNG: the same options always give the same bytes. (Default: 1) */
  seed?: number;
  /**
   * Fraction of rows whose price, stock and updated_at differ from the file with the same
   * rows, seed and dirt: the next day's file of the same supplier. (Default: 0)
   */
  changed?: number;
  /** Where to write. */
  out: string;
}

export type DirtyKind = 'bad_number' | 'bad_date' | 'missing_key' | 'duplicate_key' | 'broken_quote' | 'column_count';

const DIRTY_KINDS: readonly DirtyKind[] = [
  'bad_number',
  'bad_date',
  'missing_key',
  'duplicate_key',
  'broken_quote',
  'column_count',
];

export interface CatalogStats {
  generatorVersion: number;
  rows: number;
  seed: number;
  dirty: number;
  changed: number;
  bytes: number;
  /** Rows written with each kind of dirt. */
  dirtyRows: Record<DirtyKind, number>;
  /** Rows whose values differ from the unchanged file (clean rows only). */
  changedRows: number;
  /** Records with an embedded newline (they span two lines). */
  multilineRows: number;
}

const ADJECTIVES = [
  'Compact',
  'Cordless',
  'Heavy-duty',
  'Stainless',
  'Ergonomic',
  'Galvanised',
  'Premium',
  'Budget',
  'Magnetic',
  'Folding',
  'Insulated',
  'Precision',
];
const NOUNS = [
  'drill',
  'hammer',
  'wrench set',
  'saw',
  'screwdriver',
  'tape measure',
  'ladder',
  'toolbox',
  'clamp',
  'sander',
  'pliers',
  'chisel',
  'level',
  'glue gun',
  'hex keys',
];
const MATERIALS = ['Steel', 'Chrome vanadium', 'Aluminium', 'Carbon steel', 'ABS', 'Brass', 'Titanium'];
const EXTRAS = ['', '', '', ', boxed', ', with case', ', spare blade', ', EU plug'];
const CATEGORIES = ['Power Tools', 'Hand Tools', 'Storage', 'Measuring', 'Safety', 'Fasteners', 'Garden'];
const SUPPLIERS = ['Acme', 'Northwind', 'Globex', 'Initech', 'Umbrella', 'Stark Supply', 'Wayne Tools'];
const BAD_PRICES = ['12.5O', 'n/a', 'abc', '1.2.3', '€9'];
const BAD_STOCKS = ['lots', '12.5', '-', 'ten'];

const pad2 = (n: number) => (n < 10 ? `0${n}` : String(n));

/** The SKU of row i: unique for every i below 2^32, in scrambled order (a multiplicative permutation). */
export function skuOf(i: number): string {
  return `SKU-${(Math.imul(i, 0x9e3779b1) >>> 0).toString(16).padStart(8, '0')}`;
}

/** A timestamp in 2026, month in [firstMonth, firstMonth + months). */
function timestamp(rand: Rand, firstMonth: number, months: number): string {
  return (
    `2026-${pad2(firstMonth + int(rand, months))}-${pad2(1 + int(rand, 28))}` +
    `T${pad2(int(rand, 24))}:${pad2(int(rand, 60))}:${pad2(int(rand, 60))}Z`
  );
}

/**
 * The rows of a catalog, one CSV record (with its line break) at a time. Three PRNG streams
 * keep files comparable: the base values come from one, the dirt from another and the
 * changes from a third, so the clean, dirty and changed files of one seed share their rows.
 */
export function* catalogRecords(options: Omit<CatalogOptions, 'out'>, stats: CatalogStats): Generator<string> {
  const dirty = options.dirty ?? 0.01;
  const changed = options.changed ?? 0;
  const seed = options.seed ?? 1;
  const base = prng(seed);
  const dirt = prng(seed ^ 0x5bd1e995);
  const change = prng(seed ^ 0x1b873593);

  yield `${CATALOG_COLUMNS.join(',')}\n`;
  for (let i = 1; i <= options.rows; i++) {
    let sku = skuOf(i);
    const name = `${pick(base, ADJECTIVES)} ${pick(base, NOUNS)}`;
    let description = `${pick(base, MATERIALS)}, ${1 + int(base, 60)} pcs${pick(base, EXTRAS)}`;
    const shape = base();
    if (shape < 0.02) description += '\nSpare parts on request';
    else if (shape < 0.05) description += `, ${8 + int(base, 16)}"" blade`;
    let price = (1 + base() * 400).toFixed(2);
    let stock = String(int(base, 1000));
    const category = pick(base, CATEGORIES);
    const supplier = pick(base, SUPPLIERS);
    let updated = timestamp(base, 1, 10);

    // Drawn for every row, so the changed rows are the same whatever the dirt.
    const changeRoll = change();
    const newPrice = (Number(price) + 1 + int(change, 50)).toFixed(2);
    const newStock = String(int(change, 1000));
    const newUpdated = timestamp(change, 11, 2);

    let kind: DirtyKind | undefined;
    if (dirty > 0 && dirt() < dirty) {
      kind = pick(dirt, DIRTY_KINDS);
      if (kind === 'duplicate_key' && i === 1) kind = 'missing_key';
      stats.dirtyRows[kind]++;
    }
    if (kind === undefined && changeRoll < changed) {
      price = newPrice;
      stock = newStock;
      updated = newUpdated;
      stats.changedRows++;
    }
    if (kind === 'bad_number') {
      if (dirt() < 0.5) price = pick(dirt, BAD_PRICES);
      else stock = pick(dirt, BAD_STOCKS);
    } else if (kind === 'bad_date') {
      updated = pick(dirt, ['2026-13-45T10:00:00Z', 'yesterday', '31/12/2026']);
    } else if (kind === 'missing_key') {
      sku = '';
    } else if (kind === 'duplicate_key') {
      sku = skuOf(1 + int(dirt, i - 1));
    }

    if (shape < 0.02 && kind !== 'broken_quote') stats.multilineRows++;
    if (kind === 'broken_quote') {
      // The description's quote never closes: the rest of the line runs into it.
      yield `${sku},${name},"${description.replace('\n', ' ')},${price},${stock},${category},${supplier},${updated}\n`;
    } else {
      const extra = kind === 'column_count' ? ',EXTRA' : '';
      yield `${sku},${name},"${description}",${price},${stock},${category},${supplier},${updated}${extra}\n`;
    }
  }
}

/**
 * Writes a catalog to `options.out` (through a `.partial` file renamed at the end, so an
 * interrupted run leaves no truncated catalog), honouring backpressure: memory stays flat
 * whatever the number of rows.
 *
 * @example
 *   const stats = await generateCatalog({ rows: 1_000_000, dirty: 0.01, seed: 1, out: 'bench/data/c.csv' });
 */
export async function generateCatalog(options: CatalogOptions): Promise<CatalogStats> {
  if (!Number.isInteger(options.rows) || options.rows < 0) throw new Error(`--rows must be a whole number ≥ 0`);
  if (options.seed !== undefined && !Number.isInteger(options.seed)) throw new Error(`--seed must be a whole number`);
  for (const [name, value] of [
    ['dirty', options.dirty],
    ['changed', options.changed],
  ] as const) {
    if (value !== undefined && !(value >= 0 && value <= 1)) throw new Error(`--${name} must be between 0 and 1`);
  }
  const stats: CatalogStats = {
    generatorVersion: GENERATOR_VERSION,
    rows: options.rows,
    seed: options.seed ?? 1,
    dirty: options.dirty ?? 0.01,
    changed: options.changed ?? 0,
    bytes: 0,
    dirtyRows: Object.fromEntries(DIRTY_KINDS.map((k) => [k, 0])) as Record<DirtyKind, number>,
    changedRows: 0,
    multilineRows: 0,
  };
  await mkdir(path.dirname(path.resolve(options.out)), { recursive: true });
  const partial = `${options.out}.partial`;
  const out = createWriteStream(partial);
  const closed = finished(out);
  closed.catch(() => {}); // awaited below; an early error must not be unhandled
  let pending: string[] = [];
  let pendingBytes = 0;
  const flush = async () => {
    const chunk = pending.join('');
    pending = [];
    pendingBytes = 0;
    stats.bytes += Buffer.byteLength(chunk);
    // once() rejects if the stream fails while we wait.
    if (!out.write(chunk)) await once(out, 'drain');
  };
  for (const record of catalogRecords(options, stats)) {
    pending.push(record);
    pendingBytes += record.length;
    if (pendingBytes >= 1 << 20) await flush();
  }
  await flush();
  out.end();
  await closed;
  await rename(partial, options.out);
  return stats;
}

/** Options of a cached catalog: what names it in bench/data. */
export type CatalogKey = Omit<CatalogOptions, 'out'>;

/** The file name for these options: rows, seed, dirt and changes. */
export function catalogFileName(key: CatalogKey): string {
  const changed = key.changed ? `-c${key.changed}` : '';
  return `catalog-r${key.rows}-s${key.seed ?? 1}-d${key.dirty ?? 0.01}${changed}.csv`;
}

/**
 * The catalog for these options in `dir`, generated unless a file with the same name, made by
 * the same generator version, is already there (its stats live beside it in `.json`).
 */
export async function ensureCatalog(
  dir: string,
  key: CatalogKey,
  onGenerate?: (file: string) => void,
): Promise<{ file: string; stats: CatalogStats; reused: boolean }> {
  const file = path.join(dir, catalogFileName(key));
  const statsFile = `${file}.json`;
  if (existsSync(file) && existsSync(statsFile)) {
    const stats = JSON.parse(await readFile(statsFile, 'utf8')) as CatalogStats;
    const size = (await stat(file)).size;
    if (stats.generatorVersion === GENERATOR_VERSION && stats.bytes === size) return { file, stats, reused: true };
  }
  onGenerate?.(file);
  const stats = await generateCatalog({ ...key, out: file });
  await writeFile(statsFile, `${JSON.stringify(stats, null, 2)}\n`);
  return { file, stats, reused: false };
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      rows: { type: 'string' },
      dirty: { type: 'string', default: '0.01' },
      seed: { type: 'string', default: '1' },
      changed: { type: 'string', default: '0' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || values.rows === undefined || values.out === undefined) {
    console.log('usage: npx tsx bench/generate-catalog.ts --rows N [--dirty 0.01] [--seed 1] [--changed 0] --out FILE');
    process.exitCode = values.help ? 0 : 2;
    return;
  }
  const started = performance.now();
  const stats = await generateCatalog({
    rows: Number(values.rows),
    dirty: Number(values.dirty),
    seed: Number(values.seed),
    changed: Number(values.changed),
    out: values.out,
  });
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `${values.out}: ${stats.rows.toLocaleString('en-US')} rows, ${(stats.bytes / 1e6).toFixed(1)} MB ` +
      `(${(stats.bytes / Math.max(stats.rows, 1)).toFixed(0)} bytes/row) in ${seconds.toFixed(1)} s`,
  );
  console.log(JSON.stringify({ dirtyRows: stats.dirtyRows, changedRows: stats.changedRows }));
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    console.error(`generate-catalog: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  });
}
