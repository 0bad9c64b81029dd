// Rewrites the CLI reference in docs/cli.md (between its cli-reference markers) from --help.
// Run: npm run docs:cli (npx tsx scripts/update-cli-reference.ts)
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { CLI_REFERENCE_FILE, cliReference, writeCliReference } from './cli-reference.js';

const docPath = fileURLToPath(new URL(`../${CLI_REFERENCE_FILE}`, import.meta.url));
const before = readFileSync(docPath, 'utf8');
const after = writeCliReference(before, cliReference());
if (after === before) {
  process.stdout.write(`${CLI_REFERENCE_FILE}: the CLI reference is up to date\n`);
} else {
  writeFileSync(docPath, after);
  process.stdout.write(`${CLI_REFERENCE_FILE}: the CLI reference was regenerated from --help\n`);
}
