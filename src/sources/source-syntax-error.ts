import { PgferryError } from '../errors.js';

/**
 * The file cannot be read on from here (XML not well-formed, a JSON array broken mid-way, a
 * dump holding several tables and no --table): the load fails, naming the line and column.
 */
export class SourceSyntaxError extends Error {
  constructor(
    message: string,
    readonly line?: number,
    readonly column?: number,
  ) {
    super(message);
    this.name = 'SourceSyntaxError';
  }
}

/** A reader's SourceSyntaxError as an input error naming the file, line and column. */
export function asSourceError(error: unknown, file: string): unknown {
  if (error instanceof SourceSyntaxError) {
    return new PgferryError(error.message, { location: { file, line: error.line, column: error.column } });
  }
  return error;
}
