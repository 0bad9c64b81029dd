import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import {
  allCommands,
  CLI_REFERENCE_FILE,
  cliReference,
  commandPath,
  END_MARKER,
  readCliReference,
  REGENERATE_HINT,
  START_MARKER,
} from '../scripts/cli-reference.js';
import { buildProgram } from '../src/cli/main.js';

// No database: this only compares docs/cli.md with what the CLI says about itself.
const doc = readFileSync(new URL(`../${CLI_REFERENCE_FILE}`, import.meta.url), 'utf8');

describe(`${CLI_REFERENCE_FILE}, the CLI reference`, () => {
  it('has its markers', () => {
    expect(
      readCliReference(doc),
      `${CLI_REFERENCE_FILE} must contain ${START_MARKER} … ${END_MARKER}; ${REGENERATE_HINT}`,
    ).toBeDefined();
  });

  it('covers every command and subcommand', () => {
    const block = readCliReference(doc) ?? '';
    const missing = allCommands(buildProgram())
      .map(commandPath)
      .filter((path) => !block.includes(`## \`${path}\`\n`));
    expect(missing, `commands missing from ${CLI_REFERENCE_FILE}; ${REGENERATE_HINT}`).toEqual([]);
  });

  it('is exactly what --help prints', () => {
    expect(readCliReference(doc), `${CLI_REFERENCE_FILE} differs from --help; ${REGENERATE_HINT}`).toBe(
      cliReference(buildProgram()),
    );
  });
});
