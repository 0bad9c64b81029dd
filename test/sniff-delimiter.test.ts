import { describe, expect, it } from 'vitest';

import { DELIMITERS, sniffDelimiter } from '../src/sources/detect/sniff-delimiter.js';
import { prng } from './helpers/prng.js';

const sniff = (text: string | Buffer) => sniffDelimiter(typeof text === 'string' ? Buffer.from(text, 'utf8') : text);

describe('sniffDelimiter', () => {
  it('recognises each supported delimiter, with LF, CRLF or CR line ends', () => {
    for (const d of [',', ';', '\t', '|']) {
      for (const eol of ['\n', '\r\n', '\r']) {
        const text =
          [
            ['sku', 'name', 'price'],
            ['A1', 'Anvil', '10.50'],
            ['B2', 'Bolt', '0.25'],
          ]
            .map((r) => r.join(d))
            .join(eol) + eol;
        expect(sniff(text), `${JSON.stringify(d)} ${JSON.stringify(eol)}`).toBe(d);
      }
    }
    expect(DELIMITERS).toEqual([',', ';', '\t', '|']);
  });

  it('falls back to a comma for an empty sample, blank lines, or a single column', () => {
    expect(sniff('')).toBe(',');
    expect(sniff('\n\n\r\n')).toBe(',');
    expect(sniff('name\nAnvil\nBolt\n')).toBe(',');
  });

  it('reads a header-only sample, with or without line end', () => {
    expect(sniff('a|b|c')).toBe('|');
    expect(sniff('a;b;c\n')).toBe(';');
    expect(sniff('a\tb')).toBe('\t');
  });

  it('picks semicolons in a European file with decimal commas', () => {
    expect(sniff('sku;name;price\nA1;Anvil, large;10,50\nB2;Bolt;0,25\nC3;Nut, hex, M8;1,05\n')).toBe(';');
    // Even when the header itself has a comma in a name.
    expect(sniff('sku;Price, EUR;qty\nA1;10,50;3\nB2;0,25;7\n')).toBe(';');
  });

  it('ignores delimiters inside quoted fields, also across lines', () => {
    expect(sniff('"a,b,c";"d,e"\n"1,2,3";"4,5"\n')).toBe(';');
    expect(sniff('id|note\n1|"x,y,z\nmore, commas, here"\n2|"a,b"\n')).toBe('|');
    expect(sniff('id\tnote\n1\t"say ""a,b,c"""\n2\tplain\n')).toBe('\t');
  });

  it('prefers the candidate whose count the data lines agree on', () => {
    // Two commas in the header, but the data has none: the tab wins.
    expect(sniff('a,b,c\td\n1\t2\n3\t4\n5\t6\n')).toBe('\t');
    // Tab-separated with commas in free text.
    expect(sniff('id\tname\tnote\n1\tx\ta, b, c, d\n2\ty\te, f\n')).toBe('\t');
  });

  it('breaks a tie in the order , ; TAB |', () => {
    expect(sniff('a,b;c\n1,2;3\n')).toBe(',');
    expect(sniff('a;b\tc\n1;2\t3\n')).toBe(';');
    expect(sniff('a\tb|c\n1\t2|3\n')).toBe('\t');
  });

  it('ignores a partial last record cut off by the sample size', () => {
    const full = 'a;b;c\n' + '1;2;3\n'.repeat(3);
    expect(sniff(full + '4;5')).toBe(';');
    // An open quote at the cut: the partial record is dropped, not counted.
    expect(sniff(full + '4;"5,6,7,8,9,10')).toBe(';');
  });

  it('survives a multibyte character cut by the sample size, and a BOM', () => {
    const bytes = Buffer.from('name;city\nJosé;Zürich\n€;日本');
    expect(sniff(bytes.subarray(0, bytes.length - 1))).toBe(';');
    expect(sniff('\uFEFFa|b\n1|2\n')).toBe('|');
  });

  it('looks at the first 50 records only', () => {
    const head = 'a;b\n' + '1;2\n'.repeat(49);
    const tail = '1,2,3,4,5,6,7,8\n'.repeat(500);
    expect(sniff(head + tail)).toBe(';');
  });

  it('finds the delimiter of random clean files', () => {
    const rand = prng(3);
    const pick = <T>(items: readonly T[]) => items[Math.floor(rand() * items.length)];
    for (let n = 0; n < 300; n++) {
      const d = pick([',', ';', '\t', '|']);
      const columns = 2 + Math.floor(rand() * 5);
      const lines: string[] = [];
      for (let r = 0; r < 1 + Math.floor(rand() * 20); r++) {
        const fields: string[] = [];
        for (let c = 0; c < columns; c++) {
          const value = pick(['x', 'hello world', '1.5', '', 'a,b', 'c;d', 'e|f', 'g\th', 'line\nbreak', 'q"uote']);
          const special = /[",;|\t\n]/.test(value);
          fields.push(special ? `"${value.replaceAll('"', '""')}"` : value);
        }
        lines.push(fields.join(d));
      }
      // A header without specials, as is usual.
      const header = Array.from({ length: columns }, (_, i) => `col${i}`).join(d);
      const text = [header, ...lines].join(pick(['\n', '\r\n'])) + '\n';
      expect(sniff(text), JSON.stringify(text)).toBe(d);
    }
  });
});
