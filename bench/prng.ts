/** A deterministic PRNG (mulberry32), copied from test/helpers/prng.ts: the same seed gives the same file. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Rand = ReturnType<typeof prng>;

/** A whole number in [0, n). */
export const int = (rand: Rand, n: number): number => Math.floor(rand() * n);

/** One of the items. */
export const pick = <T>(rand: Rand, items: readonly T[]): T => items[int(rand, items.length)];
