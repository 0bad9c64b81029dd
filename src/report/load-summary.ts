import type { LoadResult, SourceSummary } from '../load/types.js';
import { formatMs, formatNumber, oneLine, printable, textTable } from './text-table.js';

/**
 * The summary `pgferry load` prints for people; `validation`: `pgferry validate`'s, whose load
 * is gone (no id).
 */
export function formatLoadResult(
  result: LoadResult,
  { validation = false, width }: { validation?: boolean; width?: number } = {},
): string {
  if (result.status === 'skipped') {
    const by = result.previousLoadRunning ? 'is being loaded' : 'was already loaded';
    return printable(
      `skipped ${result.file}: this file ${by} for this tenant with mapping ${result.mapping.name} v${result.mapping.version} (load ${result.previousLoadId}); --force loads it again`,
    );
  }
  if (result.status === 'queued') {
    return printable(
      `load ${result.loadId} queued  (${result.file}, mapping ${result.mapping.name} v${result.mapping.version}): a worker runs it (pgferry worker); follow it with: pgferry status ${result.loadId} --follow`,
    );
  }
  const c = result.counts;
  const out: string[] = [];
  const verdict = {
    succeeded: 'succeeded',
    dry_run: 'dry run: nothing was changed',
    failed: 'FAILED',
    skipped: 'skipped',
    cancelled: 'CANCELLED: nothing was promoted',
  }[result.status];
  const what = `(${result.file}, mapping ${result.mapping.name} v${result.mapping.version})`;
  if (validation) {
    const checked =
      result.status === 'dry_run' ? 'it would load; nothing was changed' : `${verdict}: nothing was changed`;
    out.push(`validated ${what}: ${checked}`);
  } else out.push(`load ${result.loadId} ${verdict}  ${what}`);
  if (result.source) out.push(`  read as: ${describeSource(result.source)}`);
  if (result.error) out.push(`  reason: ${result.error}`);
  if (result.sync) out.push(`  ${describeSyncOutcome(result.sync)}`);
  out.push('');
  const promoted = c.inserted + c.updated + c.unchanged;
  const would = result.status === 'dry_run' ? ' (would be)' : '';
  out.push(
    textTable(
      ['rows', 'count'],
      [
        ['read', c.read],
        ['  unparseable', c.unparseable],
        ['  staged', c.staged],
        ['    rejected', c.rejected],
        ['    duplicates', c.duplicates],
        [`    promoted${would}`, promoted],
        [`      inserted${would}`, c.inserted],
        [`      updated${would}`, c.updated],
        ['      unchanged', c.unchanged],
      ],
    ),
  );
  const t = result.timings;
  out.push('');
  out.push(
    `time: stage ${formatMs(t.stage)}, transform ${formatMs(t.transform)}, promote ${formatMs(t.promote)}, verify ${formatMs(t.verify)}, cleanup ${formatMs(t.cleanup)}`,
  );
  if (result.reasons.length > 0) {
    const example = (r: LoadResult['reasons'][number]) => oneLine(r.example, exampleWidth(width));
    const rejects = result.reasons.filter((r) => r.rule !== 'duplicate');
    const duplicates = result.reasons.filter((r) => r.rule === 'duplicate');
    if (rejects.length > 0) {
      out.push('');
      out.push('top reject reasons:');
      out.push(
        textTable(
          ['count', 'rule', 'column', 'example'],
          rejects.map((r) => [r.count, r.rule, r.column ?? '', example(r)]),
        ),
      );
    }
    // Not rejects: each is a line whose key a later (or earlier) line of the file replaced.
    for (const d of duplicates) {
      out.push('');
      out.push(
        `duplicate lines, not rejects: ${formatNumber(d.count)} superseded by another line of the same key (${example(d)})`,
      );
    }
    if (result.rejects === undefined) {
      out.push('');
      out.push(`the rejected lines, to fix and load again: pgferry rejects ${result.loadId} -o rejects.csv`);
    } else if (!validation) {
      // A dry run's load is gone, and its rejects with it: `pgferry rejects` would not find it.
      out.push('');
      out.push(
        'a dry run keeps no rejects: pgferry validate, with the same options, lists every one (-o FILE writes them)',
      );
    }
  }
  // File names, sheet and entry names, reasons: a file's text, never the terminal's commands.
  return printable(out.join('\n'));
}

/**
 * `csv (gzip), delimiter ";", encoding windows-1252 (detected: not UTF-8: …)` — how the file was
 * read, in one line, with why the encoding was chosen.
 */
export function describeSource(source: SourceSummary): string {
  const parts: string[] = [source.format];
  if (source.compression === 'gzip') parts[0] += ' (gzip)';
  if (source.compression === 'zip') parts[0] += ` (zip entry ${JSON.stringify(source.entry)})`;
  if (source.delimiter !== undefined) {
    parts.push(`delimiter ${source.delimiter === '\t' ? 'TAB' : JSON.stringify(source.delimiter)}`);
  }
  if (source.sheet !== undefined) parts.push(`sheet ${JSON.stringify(source.sheet)}`);
  if (source.headerRow !== undefined) parts.push(`header row ${source.headerRow}`);
  if (source.records !== undefined) parts.push(`records ${source.records}`);
  if (source.table !== undefined) parts.push(`table ${source.table}`);
  if (source.encoding !== undefined) {
    parts.push(`encoding ${source.encoding}${source.encodingReason ? ` (${source.encodingReason})` : ''}`);
  }
  return parts.join(', ');
}

/** What a sync's run did to its sync: the cursor now, and mirror's deletes. */
export function describeSyncOutcome(sync: NonNullable<LoadResult['sync']>): string {
  const parts = [`cursor now ${sync.cursor ?? '(none: nothing pulled yet)'}`];
  if (sync.deleted !== undefined) {
    parts.push(`${sync.deleted} row(s) absent from the source ${sync.soft ? 'marked deleted' : 'deleted'}`);
  }
  if (sync.kept) parts.push(sync.kept);
  return parts.join('; ');
}

/**
 * How much of a reject's example fits: what a terminal of `width` columns leaves beside the
 * count, rule and column (at least 70); all of it when the output is not a terminal.
 */
function exampleWidth(width: number | undefined): number {
  return width === undefined ? Number.POSITIVE_INFINITY : Math.max(70, width - 40);
}
