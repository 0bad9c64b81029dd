// Rewrites the CLI reference in README.md (between its cli-reference markers) from --help.
// Run: npx tsx scripts/update-readme-cli.ts
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { cliReference, writeCliReference } from './cli-reference.js';

const readmePath = fileURLToPath(new URL('../README.md', import.meta.url));
const before = readFileSync(readmePath, 'utf8');
const after = writeCliReference(before, cliReference());
if (after === before) {
  process.stdout.write('README.md: the CLI reference is up to date\n');
} else {
  writeFileSync(readmePath, after);
  process.stdout.write('README.md: the CLI reference was regenerated from --help\n');
}
