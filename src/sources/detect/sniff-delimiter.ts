/** Delimiters pgferry recognises by itself, in order of preference on a tie. */
export const DELIMITERS = [',', ';', '\t', '|'] as const;

/**
 * Picks the delimiter of a CSV sample: the candidate found most often, outside quotes, on the
 * first line, provided the following lines agree on that count. Falls back to a comma.
 *
 * @example
 *   sniffDelimiter(Buffer.from('a;b;c\n1;2;3\n')) // ';'
 */
export function sniffDelimiter(sample: Buffer): string {
  const text = sample.toString('utf8');
  const lines = recordsOf(text).slice(0, 50);
  if (lines.length === 0) return ',';
  let best: string = ',';
  let bestScore = 0;
  for (const candidate of DELIMITERS) {
    const counts = lines.map((line) => countOutsideQuotes(line, candidate));
    const headerCount = counts[0];
    if (headerCount === 0) continue;
    const agreeing = counts.filter((c) => c === headerCount).length / counts.length;
    const score = headerCount * agreeing;
    if (score > bestScore) {
      best = candidate;
      bestScore = score;
    }
  }
  return best;
}

/** Splits a sample into records, keeping quoted newlines inside; the last partial one is dropped. */
function recordsOf(text: string): string[] {
  const records: string[] = [];
  let inQuote = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') inQuote = !inQuote;
    else if (!inQuote && (c === '\n' || c === '\r')) {
      if (i > start) records.push(text.slice(start, i));
      start = i + 1;
    }
  }
  if (records.length === 0 && start < text.length) records.push(text.slice(start));
  return records;
}

function countOutsideQuotes(line: string, delimiter: string): number {
  let inQuote = false;
  let n = 0;
  for (const c of line) {
    if (c === '"') inQuote = !inQuote;
    else if (!inQuote && c === delimiter) n++;
  }
  return n;
}
