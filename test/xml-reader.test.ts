import { readFileSync } from 'node:fs';
import path from 'node:path';

import { SaxesParser } from 'saxes';
import { describe, expect, it } from 'vitest';

import { PgferryError } from '../src/errors.js';
import {
  decodeXmlName,
  encodeXmlName,
  readXmlRecords,
  type XmlReaderOptions,
} from '../src/sources/file/xml/xml-reader.js';
import { MAX_REJECT_RAW_CHARS, type SourceItem, UNDECODABLE } from '../src/sources/reader-items.js';
import { SourceSyntaxError } from '../src/sources/source-syntax-error.js';
import { int, pick, prng } from './helpers/prng.js';

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const fixture = (name: string): string => readFileSync(path.resolve('test/fixtures/xml', name), 'utf8');

async function* chunked(chunks: Iterable<string>): AsyncGenerator<string> {
  yield* chunks;
}

/** Splits text into chunks of `size` UTF-16 units (a surrogate pair may be cut, as streams may). */
function split(text: string, size: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

interface Read {
  items: SourceItem[];
  error?: SourceSyntaxError;
}

/** Reads the chunks to the end: the items yielded, and the SourceSyntaxError that ended it. */
async function read(chunks: string | string[], options?: XmlReaderOptions): Promise<Read> {
  const items: SourceItem[] = [];
  try {
    for await (const item of readXmlRecords(chunked(typeof chunks === 'string' ? [chunks] : chunks), options)) {
      items.push(item);
    }
  } catch (error) {
    if (!(error instanceof SourceSyntaxError)) throw error;
    return { items, error };
  }
  return { items };
}

/** The records' values as plain objects (asserting there is nothing but records). */
async function records(chunks: string | string[], options?: XmlReaderOptions): Promise<Record<string, unknown>[]> {
  const { items, error } = await read(chunks, options);
  if (error) throw error;
  return items.map((item, index) => {
    if (item.kind !== 'record') throw new Error(`item ${index} is a ${item.kind}`);
    expect(item.line).toBe(index + 1);
    return Object.fromEntries(item.values as Map<string, string | null>);
  });
}

async function syntaxError(chunks: string | string[], options?: XmlReaderOptions): Promise<SourceSyntaxError> {
  const { error } = await read(chunks, options);
  if (!error) throw new Error('expected a SourceSyntaxError');
  return error;
}

// ---------------------------------------------------------------------------------------------
// Columns
// ---------------------------------------------------------------------------------------------

describe('readXmlRecords: columns', () => {
  it('reads attributes as @name, nested elements with dots, their attributes as path.@name', async () => {
    const [lamp, chair, table] = await records(fixture('catalog.xml'));
    expect(lamp).toMatchObject({
      '@sku': 'A-1',
      '@status': 'active',
      name: 'Desk lamp',
      price: '12.50',
      'price.@currency': 'EUR',
      'dimensions.@unit': 'cm',
      'dimensions.width': '20',
      'dimensions.height': '45.0',
    });
    // An element with attributes and child elements has no value of its own.
    expect(lamp).not.toHaveProperty('dimensions');
    expect(chair).toMatchObject({ '@sku': 'B-2', price: '99', 'price.@currency': 'USD' });
    expect(table).toEqual({ '@sku': 'C-3' });
  });

  it('decodes entities, character references and CDATA, and keeps leaf text exactly', async () => {
    const [lamp, chair] = await records(fixture('catalog.xml'));
    expect(lamp.description).toBe('Bright <b>LED</b> lamp & "dimmer"');
    expect(lamp.note).toBe("Tom & Jerry's <pick> 💡");
    expect(chair.name).toBe('  Chair, padded  ');
  });

  it("gives an empty element '' and leaves an absent one out (NULL)", async () => {
    const [lamp, chair, table] = await records(fixture('catalog.xml'));
    expect(lamp.colour).toBe('');
    expect(chair.colour).toBe('');
    expect(table).not.toHaveProperty('colour');
    expect(lamp).not.toHaveProperty('variant');
  });

  it('makes a repeated child one column of JSON array text, of objects for complex elements', async () => {
    const [lamp, chair] = await records(fixture('catalog.xml'));
    expect(JSON.parse(lamp.tag as string)).toEqual(['office', 'lighting']);
    expect(JSON.parse(chair.variant as string)).toEqual([
      { '@code': 'B-2-R', colour: 'red' },
      { '@code': 'B-2-K', colour: 'black', stock: '0' },
    ]);
    // Repeats inside a repeated element stay real JSON arrays, not text.
    const [row] = await records('<r><x><v><a>1</a></v><v><a>2</a><a>3</a></v><v/></x></r>');
    expect(JSON.parse(row.v as string)).toEqual([{ a: '1' }, { a: ['2', '3'] }, '']);
  });

  it('keeps a repeated leaf with attributes as an object with #text', async () => {
    const [row] = await records('<r><x><t lang="en">hello</t><t>bonjour</t><t lang="de"/></x></r>');
    expect(JSON.parse(row.t as string)).toEqual([{ '@lang': 'en', '#text': 'hello' }, 'bonjour', { '@lang': 'de' }]);
  });

  it('keeps mixed content under the element own path, #text for the record element', async () => {
    const xml = `<notes>
      <note id="1">
        Call back <who>Ann</who> before noon
        <when>
          tomorrow <day>Mon</day>
        </when>
      </note>
      <note id="2">plain text only</note>
      <note id="3">
      </note>
    </notes>`;
    const [first, second, third] = await records(xml);
    expect(first).toEqual({
      '@id': '1',
      '#text': 'Call back  before noon',
      who: 'Ann',
      when: 'tomorrow',
      'when.day': 'Mon',
    });
    expect(second).toEqual({ '@id': '2', '#text': 'plain text only' });
    // Whitespace-only text is layout, not a value.
    expect(third).toEqual({ '@id': '3' });
  });

  it('reads namespaced names as written, without the xmlns declarations', async () => {
    const items = await records(fixture('google-merchant.xml'), { records: '/rss/channel/item' });
    expect(items).toEqual([
      {
        'g:id': 'TV-55',
        title: '55" television',
        'g:price': '499.00 EUR',
        'g:availability': 'in_stock',
        'g:shipping.g:country': 'DE',
        'g:shipping.g:price': '0.00 EUR',
      },
      { 'g:id': 'RADIO-1', title: 'Radio', 'g:price': '29.90 EUR', 'g:availability': 'out_of_stock' },
    ]);
    const [row] = await records('<a:feed xmlns:a="urn:a" xmlns="urn:d"><a:entry xmlns:b="urn:b" b:x="1"/></a:feed>');
    expect(row).toEqual({ '@b:x': '1' });
  });

  it('decodes _xHHHH_ in element and attribute names', async () => {
    const [row] = await records(
      '<export><row Unit_x0020_Of_x0020_Measure="kg"><Item_x0020_Code>X1</Item_x0020_Code>' +
        '<_x0032_nd_x0020_line>b</_x0032_nd_x0020_line><e_x0001F600_>smile</e_x0001F600_></row></export>',
    );
    expect(row).toEqual({ '@Unit Of Measure': 'kg', 'Item Code': 'X1', '2nd line': 'b', 'e😀': 'smile' });
  });
});

// ---------------------------------------------------------------------------------------------
// Which elements are the records
// ---------------------------------------------------------------------------------------------

describe('readXmlRecords: records', () => {
  const feed = `<export>
    <header><created>2024-01-01</created><item>not a record</item></header>
    <items>
      <item><id>1</id></item>
      <item><id>2</id></item>
    </items>
    <archive><section><item><id>3</id></item></section></archive>
  </export>`;

  it('takes an absolute path from the root, skipping everything else', async () => {
    expect(await records(feed, { records: '/export/items/item' })).toEqual([{ id: '1' }, { id: '2' }]);
    expect(await records(feed, { records: '/export/item' })).toEqual([]);
  });

  it('takes a bare name as any element of that name, and a relative path as its ending', async () => {
    expect(await records(feed, { records: 'item' })).toEqual([
      { '#text': 'not a record' },
      { id: '1' },
      { id: '2' },
      { id: '3' },
    ]);
    expect(await records(feed, { records: 'section/item' })).toEqual([{ id: '3' }]);
    expect(await records(feed, { records: '/export/*/item' })).toEqual([
      { '#text': 'not a record' },
      { id: '1' },
      { id: '2' },
    ]);
  });

  it('matches a qualified name as written or by its local name', async () => {
    const xml = '<a:feed xmlns:a="urn:a"><a:entry><a:id>1</a:id></a:entry><a:entry><a:id>2</a:id></a:entry></a:feed>';
    const expected = [{ 'a:id': '1' }, { 'a:id': '2' }];
    expect(await records(xml, { records: 'entry' })).toEqual(expected);
    expect(await records(xml, { records: 'a:entry' })).toEqual(expected);
    expect(await records(xml, { records: '/feed/entry' })).toEqual(expected);
    expect(await records(xml, { records: 'b:entry' })).toEqual([]);
  });

  it("does not start a record inside a record: a nested element of the records' name is a column", async () => {
    expect(await records('<r><item><item>inner</item></item></r>', { records: 'item' })).toEqual([{ item: 'inner' }]);
  });

  it('by default takes the children of the root, which must share one name', async () => {
    expect(await records('<r><row a="1"/><row a="2"/></r>')).toEqual([{ '@a': '1' }, { '@a': '2' }]);
    expect(await records('<r> </r>')).toEqual([]);

    const { items, error } = await read('<export>\n<header/>\n<row/>\n<row/>\n</export>');
    expect(items).toHaveLength(1);
    expect(error?.message).toContain('<header>');
    expect(error?.message).toContain('<row>');
    expect(error?.message).toContain('--records /export/row');
    expect(error?.line).toBe(3);

    const mixed = await syntaxError('<export><row/><row/><row/><total/></export>');
    expect(mixed.message).toMatch(/3 <row> then <total>.*--records \/export\/row/);
  });

  it('refuses a --records value that is not a path', async () => {
    for (const bad of ['', '/', '/a//b', 'a/', ' ']) {
      await expect(read('<r/>', { records: bad })).rejects.toThrow(PgferryError);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Malformed XML
// ---------------------------------------------------------------------------------------------

describe('readXmlRecords: malformed XML', () => {
  it('names an element left open at the end of the file, after the records before it', async () => {
    const { items, error } = await read(fixture('unclosed.xml'));
    expect(items.map((item) => item.kind === 'record' && (item.values as Map<string, string>).get('@sku'))).toEqual([
      'A-1',
      'B-2',
    ]);
    expect(error).toBeInstanceOf(SourceSyntaxError);
    expect(error?.message).toBe('XML is not well-formed: unclosed tag <item> (opened at line 12)');
    expect(error?.line).toBe(15);
    expect(typeof error?.column).toBe('number');
  });

  it('names mismatched tags, and does not yield the record they end', async () => {
    const xml = '<catalog>\n<item><n>1</n></item>\n<item>\n<n>2</n>\n</catalog>';
    const { items, error } = await read(xml);
    expect(items).toHaveLength(1);
    expect(error?.message).toBe('XML is not well-formed: closing tag does not match <item> (opened at line 3)');
    expect(error?.line).toBe(5);
    expect((await syntaxError('<a><b></c></a>')).message).toMatch(/^XML is not well-formed: closing tag/);
    expect((await syntaxError('<a></a></b>')).message).toMatch(/^XML is not well-formed: /);
  });

  it('refuses junk, undefined entities, several roots and an empty file', async () => {
    const cases: [string, RegExp][] = [
      ['', /no element/],
      ['hello', /no element|text outside/],
      ['<r><x/></r>trailing', /text outside the root/],
      ['<r><x/></r><r/>', /more than one root/],
      ['<r><x>&nbsp;</x></r>', /undefined entity/],
      ['<r><x a="1" a="2"/></r>', /duplicate attribute/],
      ['<r><x>\u0001</x></r>', /character XML does not allow/],
      ['<r><x>1</x', /not well-formed/],
      ['<r><1x/></r>', /not well-formed/],
    ];
    for (const [xml, message] of cases) {
      const error = await syntaxError(xml);
      expect(error.message, JSON.stringify(xml)).toMatch(message);
      expect(error.message).toMatch(/^XML is not well-formed: [^\n]+$/);
      expect(error.line).toBeGreaterThanOrEqual(1);
    }
  });

  it('never resolves external entities or entities declared in the DOCTYPE', async () => {
    const xml = `<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd"><!ENTITY lol "lol">]>
<r><x>&xxe;</x><y>&lol;</y></r>`;
    const { items, error } = await read(xml);
    expect(items).toEqual([]);
    expect(error?.message).toMatch(/undefined entity/);
    expect(error?.line).toBe(3);
  });
});

// ---------------------------------------------------------------------------------------------
// Encoding errors
// ---------------------------------------------------------------------------------------------

describe('readXmlRecords: undecodable bytes', () => {
  it('rejects the record that holds them, naming its number and line, and reads on', async () => {
    const xml = `<catalog>\n<item><n>1</n></item>\n<item>\n  <n>caf${UNDECODABLE}</n>\n</item>\n<item a="${UNDECODABLE}"/>\n<item><n>3</n></item>\n</catalog>`;
    const { items, error } = await read(xml);
    expect(error).toBeUndefined();
    expect(items).toEqual([
      { kind: 'record', line: 1, values: new Map([['n', '1']]) },
      {
        kind: 'reject',
        line: 2,
        rule: 'encoding',
        message: "record 2 (line 3): bytes not valid in the file's encoding",
        raw: '<item>\n  <n>caf\uFFFD</n>\n</item>',
      },
      {
        kind: 'reject',
        line: 3,
        rule: 'encoding',
        message: "record 3 (line 6): bytes not valid in the file's encoding",
        raw: '<item a="\uFFFD"/>',
      },
      { kind: 'record', line: 4, values: new Map([['n', '3']]) },
    ]);
  });

  it('ignores them outside records, and in a name too', async () => {
    const xml = `<r${UNDECODABLE}>${UNDECODABLE}<!-- ${UNDECODABLE} --><x>1</x><x${UNDECODABLE}>2</x${UNDECODABLE}></r${UNDECODABLE}>`;
    const { items, error } = await read(xml, { records: '/*/*' });
    expect(error).toBeUndefined();
    expect(items.map((item) => item.kind)).toEqual(['record', 'reject']);
  });

  it('cuts the raw text of a huge record', async () => {
    const xml = `<r><x><a>${'y'.repeat(MAX_REJECT_RAW_CHARS)}</a><b>${UNDECODABLE}</b></x></r>`;
    const { items } = await read(split(xml, 1000));
    expect(items[0]).toMatchObject({ kind: 'reject', line: 1 });
    expect(items[0].kind === 'reject' && items[0].raw.length).toBe(MAX_REJECT_RAW_CHARS);
  });

  it('takes a U+DFFF after a high surrogate as half of a character, even across chunks', async () => {
    // U+1F3FF (a skin tone modifier) is D83C DFFF in UTF-16.
    const xml = '<r><x><n>\u{1F3FF}</n></x></r>';
    const at = xml.indexOf('\uDFFF');
    expect(await records([xml.slice(0, at), xml.slice(at)])).toEqual([{ n: '\u{1F3FF}' }]);
  });
});

// ---------------------------------------------------------------------------------------------
// Streaming
// ---------------------------------------------------------------------------------------------

describe('readXmlRecords: streaming', () => {
  it('reads the same whatever the chunking, even a character pair or CRLF cut in two', async () => {
    const xml =
      '\uFEFF<?xml version="1.0"?>\r\n<!-- head -->\r\n<list xmlns:p="urn:p">\r\n' +
      '  <row id="1" p:k=\'v&amp;w\'><name>caf\u00E9 \u{1F600}</name><empty/><t>a</t><t>b</t></row>\r\n' +
      '  <?pi data?><row id="2"><![CDATA[x<y]]><sub a="1">&#x20AC;&lt;</sub></row>\r\n' +
      `  <row id="3"><bad>${UNDECODABLE}</bad></row>\r\n` +
      '  <row id="4">\r\n    <deep><er><est>1</est></er></deep>\r\n  </row>\r\n' +
      '</list>\r\n';
    const whole = await read(xml);
    expect(whole.error).toBeUndefined();
    expect(whole.items.map((item) => item.kind)).toEqual(['record', 'record', 'reject', 'record']);
    expect(whole.items[2]).toMatchObject({ message: "record 3 (line 6): bytes not valid in the file's encoding" });
    for (let at = 0; at <= xml.length; at++) {
      expect(await read([xml.slice(0, at), xml.slice(at)]), `split at ${at}`).toEqual(whole);
    }
    expect(await read(split(xml, 1))).toEqual(whole);
    expect(await read(['', ...split(xml, 7), ''])).toEqual(whole);
  });

  it('reports the same error whatever the chunking', async () => {
    const xml = '<r>\n<x><a>1</a></x>\n<x><a>2</a></y>\n<x/></r>';
    const whole = await read(xml);
    expect(whole.items).toHaveLength(1);
    for (let at = 0; at <= xml.length; at++) {
      const parts = await read([xml.slice(0, at), xml.slice(at)]);
      expect(parts.items, `split at ${at}`).toEqual(whole.items);
      expect([parts.error?.message, parts.error?.line, parts.error?.column]).toEqual([
        whole.error?.message,
        whole.error?.line,
        whole.error?.column,
      ]);
    }
  });

  it('streams a 100,000-record document without holding it', async () => {
    const count = 100_000;
    // Chunks of about 16 KiB, cut at arbitrary places: the document never exists whole.
    let produced = 0;
    async function* document(): AsyncGenerator<string> {
      let pending = '<?xml version="1.0"?>\n<products>\n';
      for (let i = 1; i <= count; i++) {
        pending +=
          `  <product sku="P${i}"><name>Product ${i} &amp; co</name>` +
          `<price currency="EUR">${(i % 1000) + 0.5}</price>${i % 10 === 0 ? '<tag>x</tag><tag>y</tag>' : ''}</product>\n`;
        if (pending.length > 16_384) {
          const cut = 16_000 + (i % 300);
          produced++;
          yield pending.slice(0, cut);
          pending = pending.slice(cut);
        }
      }
      yield `${pending}</products>\n`;
    }
    let seen = 0;
    let sample: SourceItem | undefined;
    let last: SourceItem | undefined;
    for await (const item of readXmlRecords(document())) {
      // Pulled, not read ahead: the first record arrives when the first chunk has been read.
      if (seen === 0) expect(produced).toBe(1);
      seen++;
      if (item.kind === 'record' && item.line === 12_340) sample = item;
      last = item;
    }
    expect(seen).toBe(count);
    expect(sample).toEqual({
      kind: 'record',
      line: 12_340,
      values: new Map([
        ['@sku', 'P12340'],
        ['name', 'Product 12340 & co'],
        ['price', '340.5'],
        ['price.@currency', 'EUR'],
        ['tag', '["x","y"]'],
      ]),
    });
    expect(last).toMatchObject({ kind: 'record', line: count });
  });
});

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

describe('encodeXmlName / decodeXmlName', () => {
  const hostile = [
    '',
    '_',
    '__',
    'plain',
    'Item Code',
    ' leading and trailing ',
    '2nd',
    '-x',
    '.x',
    'a.b',
    'a:b',
    ':',
    'xmlns',
    'xmlns:g',
    '<tag>',
    '"quoted" & \'single\'',
    'tab\there\nnewline',
    '😀 emoji',
    '\u{F0000}private',
    '\uD800 lone high',
    'lone low \uDFFF',
    '_x0020_',
    '_x0020',
    '_x00200041_',
    '_x0041 ',
    '_x00410042 ',
    '_X0020_',
    'a_x',
    'x_x_x_',
    '__x0020__',
    '\u0000nul',
    '@id',
    '#text',
    'über',
    '日本語',
    '·middle dot',
    '\u0301combining first',
  ];

  it('writes the XmlConvert forms', () => {
    expect(encodeXmlName('Item Code')).toBe('Item_x0020_Code');
    expect(encodeXmlName('2nd')).toBe('_x0032_nd');
    expect(encodeXmlName('a:b')).toBe('a_x003A_b');
    expect(encodeXmlName('_x0020_')).toBe('_x005F_x0020_');
    expect(encodeXmlName('')).toBe('_');
    expect(encodeXmlName('plain_name-1.2')).toBe('plain_name-1.2');
    expect(encodeXmlName('\u{F0000}')).toBe('_x000F0000_');
    expect(decodeXmlName('Item_x0020_Code')).toBe('Item Code');
    expect(decodeXmlName('_x000F0000_')).toBe('\u{F0000}');
    expect(decodeXmlName('_')).toBe('');
    expect(decodeXmlName('no_escape_x12_here')).toBe('no_escape_x12_here');
  });

  it('round-trips hostile names into valid, namespace-safe XML names', () => {
    for (const name of hostile) {
      const encoded = encodeXmlName(name);
      expect(decodeXmlName(encoded), JSON.stringify(name)).toBe(name);
      expect(encoded).not.toContain(':');
      expect(() => new SaxesParser().write(`<${encoded}/>`).close(), encoded).not.toThrow();
    }
  });

  it('round-trips random strings', () => {
    const rand = prng(7);
    const alphabet = [...'_x_X0aF9 :.-<&"é😀\uD800\uDFFF\u0301·', '_x0020_', '_x00', '_x0001F600_'];
    for (let n = 0; n < 5000; n++) {
      let name = '';
      for (let length = int(rand, 12); length > 0; length--) name += pick(rand, alphabet);
      const encoded = encodeXmlName(name);
      expect(decodeXmlName(encoded), JSON.stringify(name)).toBe(name);
    }
  });

  it('agrees with the reader: encoded names come back as columns of the same names', async () => {
    const names = hostile.filter((name) => !name.startsWith('@') && name !== '#text');
    const xml = `<rows><row>${names.map((name, i) => `<${encodeXmlName(name)}>${i}</${encodeXmlName(name)}>`).join('')}</row></rows>`;
    const [row] = await records(xml);
    expect(row).toEqual(Object.fromEntries(names.map((name, i) => [name, String(i)])));
  });
});
