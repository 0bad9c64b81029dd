// What the package installs for its users is what src/ uses: a runtime dependency that only
// bench/, scripts/ or the tests import belongs in devDependencies.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '..');
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    return entry.isDirectory() ? sourceFiles(full) : entry.name.endsWith('.ts') ? [full] : [];
  });
}

/** The packages src/ imports, statically or dynamically. */
function importedPackages(): Set<string> {
  const found = new Set<string>();
  for (const file of sourceFiles(path.join(ROOT, 'src'))) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*)'([^'.][^']*)'/g)) {
      const spec = m[1];
      if (spec.startsWith('node:')) continue;
      found.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]);
    }
  }
  return found;
}

describe('package.json', () => {
  it('lists as runtime dependencies only packages that src/ imports', () => {
    const used = importedPackages();
    expect(used.has('pg')).toBe(true); // the scan sees imports
    const unused = Object.keys(pkg.dependencies).filter((name) => !used.has(name));
    expect(unused, 'runtime dependencies no file of src/ imports (move them to devDependencies)').toEqual([]);
  });

  it('lists every package src/ imports as a runtime dependency', () => {
    const missing = [...importedPackages()].filter((name) => !(name in pkg.dependencies));
    expect(missing, 'packages src/ imports that a user installing pgferry would not get').toEqual([]);
  });
});
