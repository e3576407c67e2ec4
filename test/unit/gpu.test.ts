import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { findOnPath, GpuSampler, parseNvidiaSmi } from '../../src/observability/gpu.ts';
import { Metrics } from '../../src/observability/metrics.ts';

const CSV = '0, NVIDIA H100 80GB HBM3, 37, 1024, 81559\n1, NVIDIA H100 80GB HBM3, [N/A], 10, 81559\n';

describe('GPU gauges', () => {
  it('parses nvidia-smi CSV and skips unreadable rows', () => {
    const samples = parseNvidiaSmi(CSV);
    assert.equal(samples.length, 1);
    assert.deepEqual(samples[0], { index: '0', name: 'NVIDIA H100 80GB HBM3', utilization: 0.37, memoryUsedBytes: 1024 * 1048576, memoryTotalBytes: 81559 * 1048576 });
  });

  it('exports per-device gauges from the nvidia-smi it finds on PATH, and none without it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gpu-'));
    const bin = path.join(dir, 'nvidia-smi');
    fs.writeFileSync(bin, `#!/bin/sh\nprintf '${CSV.replace(/\n/g, '\\n')}'\n`, { mode: 0o755 });
    assert.equal(findOnPath('nvidia-smi', dir), bin);
    assert.equal(findOnPath('nvidia-smi', path.join(dir, 'empty')), undefined);

    const metrics = new Metrics();
    assert.doesNotMatch(await metrics.registry.metrics(), /gpu_utilization_ratio/);
    const sampler = new GpuSampler(bin, metrics, pino({ level: 'silent' }));
    await sampler.sample();
    const text = await metrics.registry.metrics();
    assert.match(text, /gpu_utilization_ratio\{gpu="0",name="NVIDIA H100 80GB HBM3"\} 0.37/);
    assert.match(text, /gpu_memory_total_bytes\{gpu="0",name="NVIDIA H100 80GB HBM3"\} 85520809984/);
  });
});
