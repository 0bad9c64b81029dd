import type { RejectRow } from '../catalog.js';
import { oneLine, textTable } from './text-table.js';

/**
 * Rejects as a text table — where, rule, column, value, message — each cell one printable
 * line; the value cut to 30 characters, the message to `messageChars`.
 */
export function rejectTable(rejects: readonly RejectRow[], { messageChars = 70 } = {}): string {
  return textTable(
    ['where', 'rule', 'column', 'value', 'message'],
    rejects.map((r) => [
      r.where ?? '',
      r.rule,
      r.column ?? '',
      oneLine(r.value ?? r.raw ?? '', 30),
      oneLine(r.message, messageChars),
    ]),
  );
}
