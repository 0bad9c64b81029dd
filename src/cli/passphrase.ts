import { PgferryError } from '../errors.js';

/** Where a passphrase is read from unless --passphrase-env names another variable. */
export const PASSPHRASE_ENV = 'PGFERRY_PASSPHRASE';

/**
 * The passphrase of a backup: from an environment variable (PGFERRY_PASSPHRASE, or the one
 * `envName` names), else asked for in the terminal without echo (twice when `confirm`, for a
 * new backup). Never from an argument: those show in `ps` and in shell history.
 */
export async function readPassphrase(options: { envName?: string; confirm?: boolean }): Promise<string> {
  const name = options.envName ?? PASSPHRASE_ENV;
  const fromEnv = process.env[name];
  if (fromEnv) return fromEnv;
  if (options.envName) throw new PgferryError(`the environment variable ${name} is not set, or empty`);
  if (!process.stdin.isTTY) {
    throw new PgferryError('a passphrase is needed', {
      hint: `set ${PASSPHRASE_ENV} (or name another variable with --passphrase-env), or run in a terminal to be asked`,
    });
  }
  const passphrase = await ask('passphrase: ');
  if (!passphrase) throw new PgferryError('the passphrase is empty');
  if (options.confirm && (await ask('passphrase again: ')) !== passphrase) {
    throw new PgferryError('the two passphrases differ');
  }
  return passphrase;
}

/** Reads a line from the terminal without echoing it; Ctrl-C cancels. */
function ask(prompt: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.resume();
  stdin.setEncoding('utf8');
  let typed = '';
  return new Promise((resolve, reject) => {
    const done = (error?: Error) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      if (error) reject(error);
      else resolve(typed);
    };
    const onData = (text: string) => {
      for (const c of text) {
        if (c === '\r' || c === '\n') return done();
        if (c === '\u0003') return done(new PgferryError('cancelled'));
        if (c === '\u007f' || c === '\b') typed = typed.slice(0, -1);
        else typed += c;
      }
    };
    stdin.on('data', onData);
  });
}
