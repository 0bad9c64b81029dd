import type { Command } from 'commander';

import { buildProgram } from '../src/cli/main.js';

/** The CLI reference, docs/cli.md, relative to the repository's root. */
export const CLI_REFERENCE_FILE = 'docs/cli.md';

/** The generated part of docs/cli.md sits between these two lines. */
export const START_MARKER = '<!-- cli-reference:start -->';
export const END_MARKER = '<!-- cli-reference:end -->';

/**
 * Width the help is wrapped at. Commander wraps at the terminal's width, and at 80 columns
 * when stdout is not a terminal: 80 keeps the reference identical to `pgferry … --help | cat`
 * and independent of the terminal that runs the test.
 */
export const HELP_WIDTH = 80;

const REGENERATE = 'npm run docs:cli';

/** `pgferry tenant add` for the command `add` under `tenant`. */
export function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** The program, then every command and subcommand, depth first, in the order `--help` lists them. */
export function allCommands(program: Command): Command[] {
  return [program, ...program.commands.flatMap((command) => allCommands(command))];
}

/**
 * What `--help` prints for one command — commander's `helpInformation()` plus the text the
 * command adds with `addHelpText()` (examples, exit codes) — at a fixed width, without colour,
 * and without trailing spaces (which editors strip).
 */
export function helpText(command: Command): string {
  let text = '';
  command.configureOutput({
    writeOut: (chunk) => {
      text += chunk;
    },
    writeErr: (chunk) => {
      text += chunk;
    },
    getOutHelpWidth: () => HELP_WIDTH,
    getErrHelpWidth: () => HELP_WIDTH,
    getOutHasColors: () => false,
    getErrHasColors: () => false,
  });
  command.outputHelp();
  return text
    .split('\n')
    .map((line) => line.trimEnd())
    .join('\n')
    .trim();
}

/**
 * docs/cli.md's generated part: one section per command with its `--help`, between (not
 * including) the markers.
 *
 * @example
 *   const block = cliReference(); // '\n<!-- Generated … -->\n\n## `pgferry`\n…'
 */
export function cliReference(program: Command = buildProgram()): string {
  const sections = allCommands(program).map(
    (command) => `## \`${commandPath(command)}\`\n\n\`\`\`text\n${helpText(command)}\n\`\`\``,
  );
  return [
    '',
    `<!-- Generated from the CLI's --help by \`${REGENERATE}\`: do not edit by hand. -->`,
    '',
    ...sections.flatMap((section) => [section, '']),
  ].join('\n');
}

/** The text between the markers of a document, or undefined when a marker is missing. */
export function readCliReference(doc: string): string | undefined {
  const start = doc.indexOf(START_MARKER);
  const end = doc.indexOf(END_MARKER, start + START_MARKER.length);
  if (start < 0 || end < 0) return undefined;
  return doc.slice(start + START_MARKER.length, end);
}

/** The document with the text between its markers replaced by `block`. */
export function writeCliReference(doc: string, block: string = cliReference()): string {
  const start = doc.indexOf(START_MARKER);
  const end = doc.indexOf(END_MARKER, start + START_MARKER.length);
  if (start < 0 || end < 0) {
    throw new Error(`${CLI_REFERENCE_FILE} must contain the lines ${START_MARKER} and ${END_MARKER}`);
  }
  return doc.slice(0, start + START_MARKER.length) + block + doc.slice(end);
}

/** How to bring docs/cli.md back in step, for messages. */
export const REGENERATE_HINT = `run \`${REGENERATE}\` (npx tsx scripts/update-cli-reference.ts) to regenerate ${CLI_REFERENCE_FILE} from --help`;
