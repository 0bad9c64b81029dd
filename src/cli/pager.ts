import { spawn } from 'node:child_process';
import { once } from 'node:events';

import { stdio } from './context.js';

/**
 * Shows text through a pager ($PAGER, else `less -FRX`) when it is longer than a terminal's
 * screen, else writes it as it is (also when stdout is no terminal, or the pager cannot start).
 * The text is printable already: -R only keeps less from escaping the escapes again.
 */
export async function page(text: string): Promise<void> {
  const rows = process.stdout.isTTY ? process.stdout.rows : undefined;
  if (!rows || text.split('\n').length < rows) {
    stdio.out(text);
    return;
  }
  const [command, ...args] = (process.env.PAGER?.trim() || 'less -FRX').split(/\s+/);
  const pager = spawn(command, args, { stdio: ['pipe', 'inherit', 'inherit'] });
  const started = await Promise.race([once(pager, 'spawn').then(() => true), once(pager, 'error').then(() => false)]);
  if (!started) {
    stdio.out(text);
    return;
  }
  // A reader who quits the pager early closes its input: not an error.
  pager.stdin.on('error', () => {});
  pager.stdin.end(`${text}\n`);
  await once(pager, 'close');
}
