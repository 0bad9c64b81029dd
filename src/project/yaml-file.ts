import { type Document, LineCounter, parseDocument } from 'yaml';

import { PgferryError } from '../errors.js';

/** A YAML file of pgferry's (pgferry.yaml, a plan), parsed with what its messages need: lines. */
export interface YamlFile {
  document: Document.Parsed;
  /** The line a node of the document starts on. */
  lineOf: (node: unknown) => number | undefined;
  /** An input error naming the file and, given a node, its line. */
  fail: (message: string, node?: unknown) => never;
}

/** Parses a YAML file's text; a syntax error (or a key given twice) is an input error with its line and column. */
export function parseYamlFile(text: string, file: string): YamlFile {
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter, uniqueKeys: true });
  const lineOf = (node: unknown) => {
    const range = (node as { range?: [number, number] } | null)?.range;
    return range ? lineCounter.linePos(range[0]).line : undefined;
  };
  const fail = (message: string, node?: unknown): never => {
    throw new PgferryError(message, { location: { file, line: lineOf(node) } });
  };
  if (document.errors.length > 0) {
    const error = document.errors[0];
    throw new PgferryError(`not valid YAML: ${error.message.split('\n')[0]}`, {
      location: { file, line: error.linePos?.[0].line, column: error.linePos?.[0].col },
    });
  }
  return { document, lineOf, fail };
}
