// The short version of scripts/crash-harness.ts (npm run crash -- --runs 20 for the long one):
// loads killed at random moments, finished by resume, compared with an uninterrupted load.
import { describe, expect, inject, it } from 'vitest';

import { crashHarness } from '../scripts/crash-harness.js';

describe('the crash harness', () => {
  it('every load killed at a random moment ends exactly as an uninterrupted one', async () => {
    const outcomes = await crashHarness({ runs: 4, rows: 30_000, seed: 7, databaseUrl: inject('adminUrl') });
    expect(outcomes.filter((o) => !o.exact)).toEqual([]);
    expect(outcomes).toHaveLength(4);
  }, 600_000);
});
