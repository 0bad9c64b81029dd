/** How far staging is, for progress. */
export interface StageProgress {
  bytesRead: number;
  rowsRead: number;
}

/** What staging did, whatever the source: records read, rows staged, records rejected. */
export interface StageResult {
  rowsRead: number;
  rowsStaged: number;
  unparseable: number;
  lastLine: number;
}
