import type { SourceLayout } from '../sources/source-layout.js';
import type { SourceSummary } from './types.js';

/** The layout without what only pgferry needs. */
export function sourceSummary(layout: SourceLayout): SourceSummary {
  const { columns: _columns, letters: _letters, bomBytes: _bom, ...summary } = layout;
  return summary;
}
