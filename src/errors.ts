import pg from 'pg';

/** Exit codes of the CLI. */
export const EXIT = {
  ok: 0,
  /** The load failed, or its rejects crossed the threshold. */
  loadFailed: 1,
  /** Bad usage or bad input: a missing file, an unknown tenant, a broken mapping. */
  usage: 2,
} as const;

/** SQLSTATEs pgferry branches on. */
export const SQLSTATE = {
  uniqueViolation: '23505',
  foreignKeyViolation: '23503',
  notNullViolation: '23502',
  checkViolation: '23514',
  exclusionViolation: '23P01',
  invalidParameterValue: '22023',
  undefinedObject: '42704',
  undefinedTable: '42P01',
  duplicateObject: '42710',
  objectNotInPrerequisiteState: '55000',
  invalidObjectDefinition: '42P17',
  /** Raised by a compiled promote_<load>() when a row planned for update is gone. */
  noDataFound: 'P0002',
  /** Raised by ferry.register_load: a load of the same file succeeded or is on its way (DETAIL: its id). */
  fileAlreadyLoaded: 'PF001',
  /** Raised by ferry.register_load: a load of the same file was interrupted (resume or cancel it). */
  fileLoadInterrupted: 'PF002',
  /** Raised by ferry.check_claim: another process took the load over (claims.sql). */
  claimTakenOver: 'PF003',
} as const;

export interface Location {
  file?: string;
  line?: number;
  column?: number;
}

/**
 * An error meant for the user: one line (plus a hint), naming the file, line and column when
 * there is one. Only the CLI prints it.
 */
export class PgferryError extends Error {
  readonly exitCode: number;
  readonly location: Location;
  readonly hint: string | undefined;

  constructor(
    message: string,
    options: { exitCode?: number; location?: Location; hint?: string; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'PgferryError';
    this.exitCode = options.exitCode ?? EXIT.usage;
    this.location = options.location ?? {};
    this.hint = options.hint;
  }
}

export function isDatabaseError(error: unknown): error is pg.DatabaseError {
  return error instanceof pg.DatabaseError;
}

/** `file:line:column: ` for a location, as compilers print it. */
export function formatLocation(location: Location): string {
  if (!location.file) return '';
  return `${location.file}${location.line ? `:${location.line}` : ''}${location.line && location.column ? `:${location.column}` : ''}: `;
}

/** The message a user sees for any error: pg's fields are kept (detail, hint, constraint). */
export function describeError(error: unknown, debug = false): string {
  const lines: string[] = [];
  if (error instanceof PgferryError) {
    lines.push(`${formatLocation(error.location)}${error.message}`);
    const cause = error.cause;
    if (isDatabaseError(cause) && cause.detail) lines.push(`  detail: ${cause.detail}`);
    if (error.hint) lines.push(`  hint: ${error.hint}`);
    else if (isDatabaseError(cause) && cause.hint) lines.push(`  hint: ${cause.hint}`);
  } else if (isDatabaseError(error)) {
    lines.push(`${error.message} (SQLSTATE ${error.code})`);
    if (error.detail) lines.push(`  detail: ${error.detail}`);
    if (error.hint) lines.push(`  hint: ${error.hint}`);
    if (error.constraint) lines.push(`  constraint: ${error.constraint}`);
    if (debug && error.where) lines.push(`  where: ${error.where}`);
  } else if (error instanceof Error) {
    lines.push(error.message);
  } else {
    lines.push(String(error));
  }
  if (debug && error instanceof Error && error.stack) lines.push(error.stack);
  return lines.join('\n');
}

/** Turns a database error raised by a catalog function into a user error (exit 2). */
export function asUserError(error: unknown, location?: Location): unknown {
  if (isDatabaseError(error) && /^(22|23|42|55)/.test(error.code ?? '')) {
    return new PgferryError(error.message, { location, cause: error, hint: error.hint });
  }
  return error;
}

/** SQLSTATEs of failures that pass: a lost connection, a server shutting down or starting, a deadlock, a serialization failure, too many connections. */
const TRANSIENT_SQLSTATE = /^(08...|40001|40P01|57P01|57P02|57P03|53300)$/;
const TRANSIENT_NODE_CODE = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH']);

/** Whether trying the same thing again later may succeed. */
export function isTransient(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && (TRANSIENT_SQLSTATE.test(code) || TRANSIENT_NODE_CODE.has(code))) return true;
  // node-postgres reports a connection lost mid-query without a code.
  return /^Connection terminated|connection error and is not queryable|Connection terminated unexpectedly/.test(
    error.message,
  );
}
