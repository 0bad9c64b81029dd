import { describe, expect, it, vi } from 'vitest';

import { ProgressBar } from '../src/report/progress-bar.js';

function fakeStream(isTTY: boolean) {
  const writes: string[] = [];
  const stream = { isTTY, columns: 100, write: (s: string) => writes.push(s) } as unknown as NodeJS.WriteStream;
  return { stream, writes };
}

describe('ProgressBar', () => {
  it('draws bytes, percentage, rows/s and ETA on a terminal', () => {
    const { stream, writes } = fakeStream(true);
    const bar = new ProgressBar(stream);
    bar.update('staging', 5_000_000, 10_000_000, 50_000);
    expect(writes).toHaveLength(1);
    expect(writes[0]).toMatch(/^\rstaging\s+\[#{12}\s{12}\]\s+50%\s+5\.0\/10\.0 MB\s+[\d,]+ rows\/s\s+ETA \d+s/);
    bar.done();
    expect(writes.at(-1)).toBe('\r\x1b[K');
  });

  it('draws nothing when the output is piped', () => {
    const { stream, writes } = fakeStream(false);
    const bar = new ProgressBar(stream);
    bar.update('staging', 1, 2, 1);
    bar.done();
    expect(writes).toEqual([]);
  });

  it('a step whose rows are not counted shows what it does and for how long, every second, until done', () => {
    vi.useFakeTimers();
    try {
      const { stream, writes } = fakeStream(true);
      const bar = new ProgressBar(stream);
      bar.activity('transforming', 'the mapping, in PostgreSQL');
      expect(writes).toEqual(['\rtransforming 0 s  the mapping, in PostgreSQL\x1b[K']);
      vi.advanceTimersByTime(2000);
      expect(writes.at(-1)).toBe('\rtransforming 2 s  the mapping, in PostgreSQL\x1b[K');
      bar.done();
      const drawn = writes.length;
      vi.advanceTimersByTime(5000);
      expect(writes).toHaveLength(drawn);
      expect(writes.at(-1)).toBe('\r\x1b[K');
    } finally {
      vi.useRealTimers();
    }
  });

  it('shows no activity when the output is piped', () => {
    const { stream, writes } = fakeStream(false);
    const bar = new ProgressBar(stream);
    bar.activity('transforming', 'the mapping');
    bar.done();
    expect(writes).toEqual([]);
  });
});
