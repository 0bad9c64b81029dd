// RESULTS.md is written by more than one bench: each replaces only the `## ` sections it owns,
// so `npm run bench` does not wipe what `npm run bench:sync` measured, nor the other way round.
import { readFile, writeFile } from 'node:fs/promises';

interface Section {
  heading: string;
  text: string;
}

/** Splits markdown into what comes before the first `## ` heading and the sections after it. */
function splitSections(markdown: string): { preamble: string; sections: Section[] } {
  const parts = markdown.split(/^(?=## )/m);
  const preamble = parts[0].startsWith('## ') ? '' : (parts.shift() ?? '');
  const sections = parts.map((text) => {
    const end = text.indexOf('\n');
    return { heading: end < 0 ? text : text.slice(0, end), text };
  });
  return { preamble, sections };
}

function joined(preamble: string, sections: Section[]): string {
  const blocks = [preamble, ...sections.map((s) => s.text)].map((b) => b.replace(/\n*$/, '')).filter((b) => b);
  return `${blocks.join('\n\n')}\n`;
}

/**
 * Writes each of `markdown`'s sections over the one of the same heading in `file`, where it
 * stands, or after the last; the file's other sections are kept.
 */
export async function writeSections(file: string, markdown: string): Promise<void> {
  const { preamble, sections } = splitSections(await readFile(file, 'utf8').catch(() => ''));
  for (const section of splitSections(markdown).sections) {
    const at = sections.findIndex((s) => s.heading === section.heading);
    if (at < 0) sections.push(section);
    else sections[at] = section;
  }
  await writeFile(file, joined(preamble, sections));
}

/**
 * Writes `markdown` (a preamble and sections) over `file`, keeping the file's sections that
 * `owns` says are not this writer's, after the new ones.
 */
export async function writeOwnedSections(
  file: string,
  markdown: string,
  owns: (heading: string) => boolean,
): Promise<void> {
  const old = splitSections(await readFile(file, 'utf8').catch(() => ''));
  const now = splitSections(markdown);
  const kept = old.sections.filter((s) => !owns(s.heading) && !now.sections.some((n) => n.heading === s.heading));
  await writeFile(file, joined(now.preamble, [...now.sections, ...kept]));
}
