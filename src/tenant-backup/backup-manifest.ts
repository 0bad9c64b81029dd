/**
 * What a tenant backup says of itself. The file, once decrypted and decompressed, is
 *
 *     PGFERRY TENANT BACKUP 1\n
 *     <the header: BackupHeader as one line of JSON>\n
 *     <table 1's rows in COPY text format>\.\n
 *     …                                   (one section a table, in the header's order)
 *     <the trailer: BackupTrailer as one line of JSON>\n
 *
 * The header is written before the rows (what the file holds), the trailer after them (what
 * could only be known once they were read: row counts and SHA-256s). Together they are the
 * manifest. A row of COPY's text format never is the line `\.` (a backslash in a value is
 * written `\\`), so that line ends a section unambiguously.
 */
export const BACKUP_MAGIC = 'PGFERRY TENANT BACKUP 1\n';

/** The format's version, in the header. */
export const BACKUP_FORMAT = 1;

export interface BackupColumn {
  name: string;
  /** As PostgreSQL's format_type() writes it: `numeric(10,2)`, `text[]`. */
  type: string;
}

export interface BackupTable {
  schema: string;
  table: string;
  /** Every column but the tenant column and generated ones, in the table's order. */
  columns: BackupColumn[];
}

/** A mapping version the tenant's loads or syncs used (ferry.mappings). */
export interface BackupMapping {
  name: string;
  version: number;
  sha256: string;
  target: string;
  [field: string]: unknown;
}

/** A sync of the tenant and its state (ferry.syncs, ferry.sync_state). */
export interface BackupSync {
  name: string;
  mapping: string;
  mode: string;
  state: Record<string, unknown> | null;
  [field: string]: unknown;
}

export interface BackupHeader {
  format: number;
  /** The pgferry version that wrote the backup. */
  pgferry: string;
  /** The server's version (`server_version`). */
  server: string;
  /** When the snapshot was taken (the transaction's start), ISO 8601. */
  takenAt: string;
  /** The snapshot every table was read in (pg_current_snapshot()). */
  snapshot: string;
  tenant: { slug: string; key: string };
  /** In foreign-key order: parents first. */
  tables: BackupTable[];
  catalog: { mappings: BackupMapping[]; syncs: BackupSync[] };
}

export interface BackupTableSum {
  /** `schema.table`, quoted as SQL would. */
  table: string;
  rows: number;
  /** SHA-256 of the section's bytes (its COPY text, without the closing `\.` line). */
  sha256: string;
}

export interface BackupTrailer {
  /** SHA-256 of the header's line (its JSON, without the newline). */
  headerSha256: string;
  tables: BackupTableSum[];
}
