import { type Document, LineCounter, parseDocument } from 'yaml';

import { PgferryError } from '../errors.js';

/** A YAML file of pgferry's (pgferry.yaml, a plan), parsed with what its messages need: lines. */
export interface YamlFile {
  document: Document.Parsed;
  /** The line a node of the document starts on. */
  lineOf: (node: unknown) => number | undefined;
  /**
   * Notes a problem, naming the file and, given a node, its line, and lets the check go on:
   * a file's problems are reported all at once (throwProblems).
   */
  report: (message: string, node?: unknown) => void;
  /** A problem after which nothing more can be checked: thrown at once, with those noted before. */
  fail: (message: string, node?: unknown) => never;
  /** Throws one input error listing every problem noted, if there is any. */
  throwProblems: () => void;
}

/** A problem of a checked file: its message, and where. */
export interface FileProblem {
  message: string;
  file: string;
  line?: number;
}

/** Parses a YAML file's text; a syntax error (or a key given twice) is an input error with its line and column. */
export function parseYamlFile(text: string, file: string): YamlFile {
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter, uniqueKeys: true });
  const lineOf = (node: unknown) => {
    const range = (node as { range?: [number, number] } | null)?.range;
    return range ? lineCounter.linePos(range[0]).line : undefined;
  };
  const problems: FileProblem[] = [];
  const report = (message: string, node?: unknown): void => {
    problems.push({ message, file, line: lineOf(node) });
  };
  const throwProblems = () => {
    if (problems.length > 0) throw problemsError(problems);
  };
  const fail = (message: string, node?: unknown): never => {
    report(message, node);
    throw problemsError(problems);
  };
  if (document.errors.length > 0) {
    // Every syntax error, each with its line and column.
    const errors = document.errors.map((error) => ({
      message: `not valid YAML: ${error.message.split('\n')[0]}`,
      file,
      line: error.linePos?.[0].line,
      column: error.linePos?.[0].col,
    }));
    throw problemsError(errors);
  }
  return { document, lineOf, report, fail, throwProblems };
}

/**
 * One input error for the problems of one or more files: a single problem as before (its
 * location the error's), several as a list, one `file:line: message` a line, in file order.
 */
export function problemsError(problems: (FileProblem & { column?: number })[]): PgferryError {
  if (problems.length === 1) {
    const [only] = problems;
    return new PgferryError(only.message, { location: { file: only.file, line: only.line, column: only.column } });
  }
  const where = (p: FileProblem & { column?: number }) =>
    [p.file, p.line, p.line !== undefined ? p.column : undefined].filter((part) => part !== undefined).join(':');
  const files = [...new Set(problems.map((p) => p.file))];
  return new PgferryError(
    [
      `${problems.length} problems in ${files.join(' and ')}:`,
      ...problems.map((p) => `  ${where(p)}: ${p.message}`),
    ].join('\n'),
  );
}
