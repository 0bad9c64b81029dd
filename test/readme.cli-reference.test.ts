import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import {
  allCommands,
  cliReference,
  commandPath,
  END_MARKER,
  readCliReference,
  REGENERATE_HINT,
  START_MARKER,
} from '../scripts/cli-reference.js';
import { buildProgram } from '../src/cli/main.js';

// No database: this only compares the README with what the CLI says about itself.
const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

describe("README's CLI reference", () => {
  it('has its markers', () => {
    expect(
      readCliReference(readme),
      `README.md must contain ${START_MARKER} … ${END_MARKER}; ${REGENERATE_HINT}`,
    ).toBeDefined();
  });

  it('covers every command and subcommand', () => {
    const block = readCliReference(readme) ?? '';
    const missing = allCommands(buildProgram())
      .map(commandPath)
      .filter((path) => !block.includes(`### \`${path}\`\n`));
    expect(missing, `commands missing from README.md; ${REGENERATE_HINT}`).toEqual([]);
  });

  it('is exactly what --help prints', () => {
    expect(readCliReference(readme), `README.md's CLI reference differs from --help; ${REGENERATE_HINT}`).toBe(
      cliReference(buildProgram()),
    );
  });
});
