import { type Database, openDatabase } from '../db/database.js';

/** Options every command shares (set on the program). */
export interface GlobalOptions {
  debug?: boolean;
  databaseUrl?: string;
  home?: string;
}

/** What a command writes; main() prints it, so commands stay testable. */
export interface Output {
  out: (text: string) => void;
  err: (text: string) => void;
}

/** The terminal's width, when standard output is one: reports fit their text to it. */
export const terminalWidth = (): number | undefined => (process.stdout.isTTY ? process.stdout.columns : undefined);

export const stdio: Output = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
};

/**
 * Opens the database (embedded unless DATABASE_URL/PG* say otherwise), runs fn, closes it.
 * The schema is installed or upgraded first unless `migrate: false`; a transaction-mode pooler
 * is refused unless `requireSession: false`.
 */
export async function withDatabase<T>(
  global: GlobalOptions & { migrate?: boolean; requireSession?: boolean },
  fn: (db: Database) => Promise<T>,
): Promise<T> {
  const db = await openDatabase({
    url: global.databaseUrl,
    embeddedDir: global.home,
    migrate: global.migrate,
    requireSession: global.requireSession,
  });
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

/** Parses a whole, non-negative number option. */
export function wholeNumber(name: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value)) throw new InvalidOption(`${name} must be a whole number, not "${value}"`);
    return Number(value);
  };
}

export class InvalidOption extends Error {}

let exitCode = 0;

/** The exit code a command asks for (a failed load: 1); main() returns it. */
export function setExitCode(code: number): void {
  exitCode = code;
}

export function takeExitCode(): number {
  const code = exitCode;
  exitCode = 0;
  return code;
}
