import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { isSizeHeading } from '../bench/report.js';
import { writeOwnedSections, writeSections } from '../bench/results-file.js';

// RESULTS.md is shared by `npm run bench` and `npm run bench:sync`: neither may wipe the other's.
const RESULTS = [
  '# pgferry benchmark results',
  '',
  'preamble of run.ts',
  '',
  '## 1,000,000 rows (105.8 MB, `catalog.csv`)',
  '',
  '| old figures |',
  '',
  '## Incremental sync (issue 6)',
  '',
  'sync figures, packed',
  '',
  '## Incremental sync (issue 6), target at fillfactor 90',
  '',
  'sync figures, fillfactor 90',
  '',
  '## Incremental sync: other runs, and what was tried',
  '',
  'history',
  '',
].join('\n');

let dir: string;
let file: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'pgferry-results-'));
  file = path.join(dir, 'RESULTS.md');
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('bench results file', () => {
  it('replaces one section in place, leaving the others byte for byte', async () => {
    await writeFile(file, RESULTS);
    await writeSections(file, '## Incremental sync (issue 6)\n\nnew figures\n');
    expect(await readFile(file, 'utf8')).toBe(RESULTS.replace('sync figures, packed', 'new figures'));

    await writeSections(file, '## Incremental sync (issue 6)\n\nsync figures, packed\n');
    expect(await readFile(file, 'utf8')).toBe(RESULTS);
  });

  it('appends a section it does not find, and starts a missing file', async () => {
    await writeFile(file, RESULTS);
    await writeSections(file, '## Incremental sync (issue 6), target at fillfactor 80\n\nff80\n');
    expect(await readFile(file, 'utf8')).toBe(
      `${RESULTS}\n## Incremental sync (issue 6), target at fillfactor 80\n\nff80\n`,
    );

    const fresh = path.join(dir, 'fresh.md');
    await writeSections(fresh, '## Incremental sync (issue 6)\n\nfirst\n');
    expect(await readFile(fresh, 'utf8')).toBe('## Incremental sync (issue 6)\n\nfirst\n');
  });

  it("npm run bench rewrites its preamble and size sections, and keeps bench:sync's", async () => {
    await writeFile(file, RESULTS);
    const run = '# pgferry benchmark results\n\nnew preamble\n\n## 5,000,000 rows (528.8 MB, `big.csv`)\n\n| new |\n';
    await writeOwnedSections(file, run, isSizeHeading);
    const text = await readFile(file, 'utf8');
    expect(text).not.toContain('old figures');
    expect(text).not.toContain('preamble of run.ts');
    expect(text).toBe(`${run}\n${RESULTS.slice(RESULTS.indexOf('## Incremental sync (issue 6)\n'))}`);
  });
});
