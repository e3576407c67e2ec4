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

/** One scrape of /metrics, to read several series from the same moment. */
export async function scrapeMetrics(baseUrl: string): Promise<string> {
  return (await fetch(`${baseUrl}/metrics`)).text();
}

/** The sum of metric `name` in a scrape over every series whose labels include `labels` (0 when there is none). */
export function sumIn(scrape: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let sum = 0;
  for (const m of scrape.matchAll(/^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? (\S+)$/gm)) {
    if (m[1] !== name) continue;
    const present = new Set((m[2] ?? '').split(',').filter(Boolean));
    if (wanted.every((w) => present.has(w))) sum += Number(m[3]);
  }
  return sum;
}

/** The sum of metric `name` over every series whose labels include `labels`, from a fresh scrape. */
export async function metricSum(baseUrl: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  return sumIn(await scrapeMetrics(baseUrl), name, labels);
}
