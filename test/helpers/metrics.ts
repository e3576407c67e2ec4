/** Reading the service's own /metrics in tests. */

/** Polls /metrics until gauge `name` reads `value` (or the time is up); returns the last reading. */
export async function waitForGauge(baseUrl: string, name: string, value: number, timeoutMs = 5000): Promise<number | undefined> {
  const deadline = Date.now() + timeoutMs;
  let last: number | undefined;
  for (;;) {
    const text = await (await fetch(`${baseUrl}/metrics`)).text();
    const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
    last = match ? Number(match[1]) : undefined;
    if (last === value || Date.now() > deadline) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
}
