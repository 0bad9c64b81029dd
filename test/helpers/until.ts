/** Waits until check() holds, asking every 50 ms; gives up after `ms` (default 10 s). */
export async function until(check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  for (let waited = 0; waited < ms; waited += 50) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('gave up waiting');
}
