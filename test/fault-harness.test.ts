// The short version of scripts/fault-harness.ts (npm run crash -- --runs 20 for the long one):
// the claim's or a step's connection cut at a random moment of a load, with a resume run at
// once beside it; every load ends exactly once, and the catalog agrees with the table.
import { describe, expect, inject, it } from 'vitest';

import { faultHarness } from '../scripts/fault-harness.js';

describe('the fault harness', () => {
  it('every load whose claim or step connection is cut, resumed at once, ends exactly once', async () => {
    const outcomes = await faultHarness({ runs: 4, rows: 10_000, seed: 11, databaseUrl: inject('adminUrl') });
    expect(outcomes.filter((o) => !o.exact)).toEqual([]);
    expect(outcomes).toHaveLength(4);
  }, 120_000);
});
