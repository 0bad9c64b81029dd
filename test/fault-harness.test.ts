// The short version of scripts/fault-harness.ts (npm run crash -- --runs 20 for the long one),
// on an embedded server of its own, which it restarts: each kind of fault once — the claim's
// connection cut, a step's connection cut, the server restarted fast and crashed, each with a
// concurrent resume, and the worker running the load killed beside a second worker. Every load
// ends exactly once, and the catalog agrees with the table.
import { describe, expect, it } from 'vitest';

import { faultHarness } from '../scripts/fault-harness.js';

describe('the fault harness', () => {
  it('every load hit by a fault ends exactly once, whoever finishes it', async () => {
    const outcomes = await faultHarness({ runs: 5, rows: 10_000, seed: 11 });
    expect(outcomes.filter((o) => !o.exact)).toEqual([]);
    // Each fault hit a running load (a run whose fault came too late is tried again, sooner).
    expect(outcomes.filter((o) => !o.hit)).toEqual([]);
    expect(outcomes.map((o) => o.kind)).toEqual([
      'claim',
      'step',
      'restart fast',
      'restart immediate',
      'worker killed',
    ]);
  }, 600_000);
});
