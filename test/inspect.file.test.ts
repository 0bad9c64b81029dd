import { existsSync } from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { tempDir, writeFile } from './helpers/fixtures.js';
import { runCli } from './helpers/run-cli.js';

const dir = tempDir();
/** No DATABASE_URL and a home that must stay absent: inspect starts no server and writes nothing. */
const home = path.join(dir, 'pgferry-home');
const inspect = (...args: string[]) => runCli(['--home', home, 'inspect', ...args], { cwd: dir });

describe('pgferry inspect', () => {
  it('a Windows-1252 CSV with German headers: encoding and why, delimiter, columns as a mapping quotes them, rows escaped', async () => {
    const text = 'Kundennr;Straße;"Umsatz ""netto""";\r\n1;Hauptstraße 1;3,50;\r\n2;\x1b[31mrot;4;\r\n"3;x\r\n';
    const file = writeFile(dir, 'kunden.csv', Buffer.from(text, 'latin1'));
    const run = await inspect(file);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/encoding\s+windows-1252 \(detected: not UTF-8/);
    expect(run.stdout).toMatch(/delimiter\s+";" \(semicolon\)/);
    expect(run.stdout).toMatch(/header row\s+1/);
    expect(run.stdout).toContain('s."Straße"');
    expect(run.stdout).toContain('s."Umsatz ""netto"""');
    expect(run.stdout).toContain('s."col_4"');
    expect(run.stdout).toContain('Hauptstraße 1');
    expect(run.stdout).toContain('\\u{1b}[31mrot');
    expect(run.stdout).not.toContain('\x1b');
    expect(run.stdout).toMatch(/unclosed_quote/);
    expect(existsSync(home)).toBe(false);
  });

  it('--json: the staged names, the sample by staged column, the delimiter given', async () => {
    const file = writeFile(dir, 'pipes.txt', 'sku|sku|\n1|2|3\n');
    const run = await inspect(file, '--delimiter', '|', '--json');
    expect(run.code).toBe(0);
    const seen = JSON.parse(run.stdout);
    expect(seen.layout).toMatchObject({ format: 'csv', delimiter: '|', encoding: 'utf-8' });
    expect(seen.columns.map((c: { inMapping: string }) => c.inMapping)).toEqual(['s."sku"', 's."sku_2"', 's."col_3"']);
    expect(seen.sample).toEqual([{ line: 2, values: { sku: '1', sku_2: '2', col_3: '3' } }]);
  });

  it('XLSX: every sheet, the sheet read and its header row; --sheet picks another', async () => {
    const file = path.resolve('test/fixtures/xlsx/catalog.xlsx');
    const run = await inspect(file, '-n', '2');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/sheets\s+"Catalog", "My Sheet", "Numbers", "Empty"/);
    expect(run.stdout).toMatch(/sheet read\s+"Catalog"/);
    expect(run.stdout).toMatch(/header row\s+3/);
    expect(run.stdout).toMatch(/first 2 rows/);
    const other = await inspect(file, '--sheet', 'Numbers', '--json');
    expect(JSON.parse(other.stdout).layout.sheet).toBe('Numbers');
  });

  it('JSON: the arrays that could be the records, and which one a load reads', async () => {
    const file = writeFile(
      dir,
      'nested.json',
      '{"meta":{"tags":[{"a":1}]},"data":{"items":[{"sku":"A"},{"sku":"B"}]},"list":[1,2]}',
    );
    const run = await inspect(file);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/meta\.tags\s+1 of 1 elements are objects\n/);
    expect(run.stdout).toMatch(/data\.items\s+2 of 2 elements are objects\n/);
    expect(run.stdout).toMatch(/list\s+0 of 2 elements are objects\s+\(read\)/);
    expect(run.stdout).toMatch(/no records read: name the array/);
    const chosen = await inspect(file, '--records', 'data.items', '--json');
    const seen = JSON.parse(chosen.stdout);
    expect(seen.recordArrays.find((a: { chosen: boolean }) => a.chosen).path).toBe('data.items');
    expect(seen.sample.map((r: { values: { sku: string } }) => r.values.sku)).toEqual(['A', 'B']);
  });

  it('a missing file or an option of another format: one line, exit 2', async () => {
    const missing = await inspect(path.join(dir, 'nope.csv'));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^pgferry: no such file: .*nope\.csv\n$/);
    const csv = writeFile(dir, 'plain.csv', 'a,b\n1,2\n');
    const wrong = await inspect(csv, '--sheet', 'x');
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/--sheet is for xlsx files, and this one is csv/);
  });
});
