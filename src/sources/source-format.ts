/** The formats pgferry reads. TSV is CSV with a tab delimiter. */
export const SOURCE_FORMATS = ['csv', 'tsv', 'xlsx', 'json', 'ndjson', 'xml', 'sql'] as const;
export type SourceFormat = (typeof SOURCE_FORMATS)[number];
