/** An array of a JSON document that `--records` could name. */
export interface JsonArrayPath {
  /** As `--records` takes it: `data.items` (or `/a.b/c` when a name holds a dot); `$` for the document itself. */
  path: string;
  /** Its elements, and how many of them are objects (records must be). */
  elements: number;
  objects: number;
}

type Frame =
  | { kind: 'object'; path: string[] | null; expectKey: boolean; key: string | null }
  | { kind: 'array'; found: JsonArrayPath | null; awaitingValue: boolean };

const MAX_KEY_CHARS = 1000;

/**
 * The arrays of a JSON document that `--records` can name: those reached through objects only
 * (as it walks), in the order they start, with how many of their elements are objects. Reads
 * the whole text once and keeps only the path being walked (memory stays flat). Text that is
 * not well-formed JSON ends the walk where it breaks: what was found so far is returned.
 *
 * @example
 *   await findJsonArrays(decodeText(bytes, 'utf-8')) // [{ path: 'data.items', elements: 3, objects: 3 }]
 */
export async function findJsonArrays(text: AsyncIterable<string>): Promise<JsonArrayPath[]> {
  const found: JsonArrayPath[] = [];
  const stack: Frame[] = [];
  let inString = false;
  let escaped = false;
  let stringIsKey = false;
  let keyText = '';

  /** A value (of any kind) starts here: counted by the array it is in, if any. */
  const valueStarts = (isObject: boolean) => {
    const top = stack.at(-1);
    if (top?.kind !== 'array' || !top.awaitingValue) return;
    top.awaitingValue = false;
    if (top.found) {
      top.found.elements++;
      if (isObject) top.found.objects++;
    }
  };
  /** The path of a container starting now, or null if --records cannot reach it. */
  const pathHere = (): string[] | null => {
    const top = stack.at(-1);
    if (!top) return [];
    if (top.kind === 'array' || top.path === null || top.key === null) return null;
    return [...top.path, top.key];
  };

  for await (const chunk of text) {
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i];
      if (inString) {
        if (!escaped && c === '"') {
          inString = false;
          const top = stack.at(-1);
          if (stringIsKey && top?.kind === 'object') {
            top.key = unescapeKey(keyText);
            top.expectKey = false;
          }
          continue;
        }
        escaped = !escaped && c === '\\';
        if (stringIsKey && keyText.length < MAX_KEY_CHARS) keyText += c;
        continue;
      }
      switch (c) {
        case '"': {
          const top = stack.at(-1);
          stringIsKey = top?.kind === 'object' && top.expectKey;
          keyText = '';
          if (!stringIsKey) valueStarts(false);
          inString = true;
          break;
        }
        case '{':
          valueStarts(true);
          stack.push({ kind: 'object', path: pathHere(), expectKey: true, key: null });
          break;
        case '[': {
          valueStarts(false);
          const path = pathHere();
          const entry = path === null ? null : { path: recordsOption(path), elements: 0, objects: 0 };
          if (entry) found.push(entry);
          stack.push({ kind: 'array', found: entry, awaitingValue: true });
          break;
        }
        case '}':
        case ']':
          stack.pop();
          break;
        case ',': {
          const top = stack.at(-1);
          if (top?.kind === 'object') {
            top.expectKey = true;
            top.key = null;
          } else if (top?.kind === 'array') top.awaitingValue = true;
          break;
        }
        case ':':
        case ' ':
        case '\t':
        case '\n':
        case '\r':
          break;
        default:
          // A number, true, false or null.
          valueStarts(false);
      }
    }
  }
  return found;
}

/** A member name as JSON writes it, unescaped (a broken escape is kept as written). */
function unescapeKey(raw: string): string {
  try {
    return JSON.parse(`"${raw}"`) as string;
  } catch {
    return raw;
  }
}

/** The path as `--records` takes it. */
function recordsOption(path: string[]): string {
  if (path.length === 0) return '$';
  return path.some((part) => part.includes('.')) ? `/${path.join('/')}` : path.join('.');
}
