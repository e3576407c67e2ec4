/** deploy/grafana/gemma-3-api.json queries only metrics this service exports (checked against a live /metrics). */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { startApp, type TestApp } from '../helpers/app.ts';

const PROMQL_WORDS = new Set(['histogram_quantile', 'sum', 'by', 'rate', 'le', 'route', 'status_code', 'engine', 'outcome', 'dependency', 'upstream', 'or', 'vector', 'max', 'status', 'state']);

describe('Grafana dashboard', () => {
  let t: TestApp;
  before(async () => {
    t = await startApp({ env: { GEMMA_MODEL: '/absent.gguf', ENABLE_LOCAL_WHISPER: 'false' } });
  });
  after(() => t.close());

  it('every panel queries metrics the service exports', async () => {
    await fetch(`${t.url}/health`);
    const exported = new Set([...(await (await fetch(`${t.url}/metrics`)).text()).matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
    // GPU gauges exist only where nvidia-smi runs; their names come from the sampler's source
    for (const m of fs.readFileSync('src/observability/gpu.ts', 'utf8').matchAll(/gauge\('(gpu_\w+)'/g)) exported.add(m[1]!);
    const dashboard = JSON.parse(fs.readFileSync('deploy/grafana/gemma-3-api.json', 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };
    assert.ok(dashboard.panels.length >= 15);
    for (const panel of dashboard.panels) {
      for (const { expr } of panel.targets) {
        const names = [...expr.replace(/\{[^}]*\}|\[[^\]]*\]|"[^"]*"/g, ' ').matchAll(/[a-z_][a-z0-9_]*/g)].map((m) => m[0]).filter((w) => !PROMQL_WORDS.has(w));
        assert.ok(names.length > 0, panel.title);
        for (const name of names) {
          const family = name.replace(/_(bucket|count|sum)$/, '');
          assert.ok(exported.has(family), `${panel.title}: ${name} is not exported`);
        }
      }
    }
  });
});
