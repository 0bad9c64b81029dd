import { PgferryError } from '../errors.js';

/** An error as a load's row in the catalog records it: with the mapping's file and line when known. */
export function describeForCatalog(error: unknown): string {
  if (error instanceof PgferryError && error.location.file) {
    return `${error.location.file}:${error.location.line ?? ''}: ${error.message}`;
  }
  return error instanceof Error ? error.message : String(error);
}
