import type { Mapping } from '../mappings/mapping-file.js';
import type { SourceSession } from '../sources/database/source-session.js';
import type { SourceLayout } from '../sources/source-layout.js';
import type { LoadClaim } from './claim.js';
import type { LoadEvent, LoadOptions } from './types.js';

/** A registered load, claimed by this process, and where to start it (or resume it). */
export interface LoadRun {
  loadId: number;
  mapping: Mapping;
  mappingVersion: number;
  file: string;
  /** How the file is read (kept in the catalog: resume reads it the same way). */
  source: SourceLayout;
  /** A source database's URL (only ever in memory: it may hold a password). */
  sourceUrl?: string;
  /** A connection to that source, open already: the stage's first attempt reads through it. */
  sourceSession?: SourceSession;
  columns: string[];
  jobs: number;
  options: LoadOptions;
  emit: (event: LoadEvent) => void;
  /** This process's claim on the load, renewed after a lost connection. */
  claim: LoadClaim;
  /** compile: a new load. stage: resume staging after a checkpoint. transform: staging is done. */
  from: { step: 'compile' | 'stage' | 'transform'; afterLine?: number; rowsStaged?: number };
}
