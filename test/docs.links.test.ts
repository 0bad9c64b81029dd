import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

// No database: this reads the documentation and checks that every relative link in it
// resolves — to a file or folder of the repository, and for a `#fragment` into a Markdown
// file, to a heading of that file (GitHub's anchors).

const root = fileURLToPath(new URL('..', import.meta.url));

/** The documents whose links are checked, relative to the repository's root. */
function documents(): string[] {
  const docs = (dir: string): string[] =>
    readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((entry) => {
      const relative = path.posix.join(dir, entry.name);
      if (entry.isDirectory()) return docs(relative);
      return entry.name.endsWith('.md') ? [relative] : [];
    });
  return ['README.md', 'CONTRIBUTING.md', ...docs('docs'), 'bench/README.md', 'CHANGELOG.md'];
}

/** A document's lines with fenced code blocks blanked out (their `#` and `[x](y)` are code). */
function proseLines(text: string): string[] {
  let fence: string | undefined;
  return text.split('\n').map((line) => {
    const opening = /^\s*(`{3,}|~{3,})/.exec(line);
    if (fence === undefined) {
      if (opening) {
        fence = opening[1];
        return '';
      }
      return line;
    }
    if (opening && opening[1][0] === fence[0] && opening[1].length >= fence.length && line.trim() === opening[1]) {
      fence = undefined;
    }
    return '';
  });
}

/** Inline code is code: `[a](b)` inside backticks is not a link. */
function withoutCodeSpans(line: string): string {
  return line.replace(/(`+)(?:(?!\1).)+?\1/g, (span) => ' '.repeat(span.length));
}

/**
 * GitHub's anchor for a heading (as github-slugger makes it): the heading's text as rendered
 * (no inline code marks, links reduced to their text, no HTML tags), lower-cased, without
 * punctuation other than `-` and `_`, spaces turned into `-`.
 *
 * @example
 *   slug('Syncs: incremental pulls from a database') // 'syncs-incremental-pulls-from-a-database'
 */
function slug(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/<[^>]+>/g, '')
    .replace(/`/g, '');
  return text
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** Every anchor a Markdown file offers: its headings' slugs (repeats get -1, -2 …) and explicit ids. */
function anchors(text: string): Set<string> {
  const found = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of proseLines(text)) {
    const heading = /^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$/.exec(line);
    if (heading) {
      const base = slug(heading[1]);
      const count = seen.get(base) ?? 0;
      seen.set(base, count + 1);
      found.add(count === 0 ? base : `${base}-${count}`);
    }
    for (const id of line.matchAll(/<a\s+(?:name|id)="([^"]+)"/g)) found.add(id[1]);
  }
  return found;
}

interface Link {
  line: number;
  target: string;
}

/** Inline links and images, `[text](target "title")`, and reference definitions, `[x]: target`. */
function links(text: string): Link[] {
  const found: Link[] = [];
  proseLines(text).forEach((raw, index) => {
    const line = withoutCodeSpans(raw);
    for (const match of line.matchAll(/\]\(\s*(<[^>]*>|[^)\s]*)(?:\s+"[^"]*")?\s*\)/g)) {
      found.push({ line: index + 1, target: match[1].replace(/^<|>$/g, '') });
    }
    const definition = /^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)/.exec(line);
    if (definition) found.push({ line: index + 1, target: definition[1].replace(/^<|>$/g, '') });
  });
  return found;
}

/** What is wrong with one link of `document`, or undefined when it resolves. */
function problem(document: string, target: string): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('//')) return undefined; // not relative
  const hash = target.indexOf('#');
  const file = decodeURIComponent(hash < 0 ? target : target.slice(0, hash));
  const fragment = hash < 0 ? undefined : decodeURIComponent(target.slice(hash + 1));
  const resolved =
    file === '' ? path.join(root, document) : path.join(root, file.startsWith('/') ? '' : path.dirname(document), file);
  if (!resolved.startsWith(root)) return 'points outside the repository';
  if (!existsSync(resolved)) return `${path.relative(root, resolved)} does not exist`;
  if (fragment === undefined || fragment === '') return undefined;
  if (!resolved.endsWith('.md') || statSync(resolved).isDirectory()) return undefined; // #L10 and the like
  if (!anchors(readFileSync(resolved, 'utf8')).has(fragment)) {
    return `${path.relative(root, resolved)} has no heading whose anchor is #${fragment}`;
  }
  return undefined;
}

describe('slug', () => {
  it('makes the anchors GitHub makes', () => {
    expect(slug('Syncs: incremental pulls from a database')).toBe('syncs-incremental-pulls-from-a-database');
    expect(slug("A load's summary")).toBe('a-loads-summary');
    expect(slug('`pgferry tenant add`')).toBe('pgferry-tenant-add');
    expect(slug('Database: embedded or your own')).toBe('database-embedded-or-your-own');
    expect(slug('Incremental sync (issue 6)')).toBe('incremental-sync-issue-6');
    expect(slug('[Writing](x.md) a mapping')).toBe('writing-a-mapping');
  });

  it('numbers repeated headings and skips code blocks', () => {
    const doc = '# Plans\n\n```yaml\n# not a heading\n```\n\n## Plans\n\n### Notes #\n';
    expect([...anchors(doc)]).toEqual(['plans', 'plans-1', 'notes']);
  });
});

describe('relative links in the documentation', () => {
  it.each(documents())('%s: every relative link resolves', (document) => {
    const text = readFileSync(path.join(root, document), 'utf8');
    const broken = links(text).flatMap(({ line, target }) => {
      const why = problem(document, target);
      return why === undefined ? [] : [`${document}:${line}: (${target}) ${why}`];
    });
    expect(broken, `broken links in ${document}`).toEqual([]);
  });

  it('finds the links it checks', () => {
    // A guard for the parser itself: the README links into docs/.
    const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
    expect(links(readme).map((link) => link.target)).toContain('docs/cli.md');
  });
});

describe('README.md', () => {
  it('stays one page: at most 12 KB', () => {
    const bytes = statSync(path.join(root, 'README.md')).size;
    expect(bytes, 'README.md is the one page a user starts from; move detail into docs/').toBeLessThanOrEqual(12_288);
  });
});
