/** MODEL_MEMORY_BUDGET_MB and `memory_mb`: parsed at start-up, every problem listed. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config.ts';
import { accountingDevice, budgetOf, estimateBytes, LLM_RUNNER_BYTES, needBytes, WHISPER_ALLOWANCE_BYTES } from '../../src/engines/memory-budget.ts';
import { configProblems as problems } from '../helpers/config.ts';

const MIB = 1024 * 1024;

describe('MODEL_MEMORY_BUDGET_MB', () => {
  it('unset: no budget; a number: every device; a list: the devices it names, the others none', () => {
    assert.equal(loadConfig({}).MODEL_MEMORY_BUDGET_MB, undefined);
    const all = loadConfig({ MODEL_MEMORY_BUDGET_MB: '16000' }).MODEL_MEMORY_BUDGET_MB;
    assert.equal(budgetOf(all, 'cpu'), 16000 * MIB);
    assert.equal(budgetOf(all, 'cuda:1'), 16000 * MIB);
    const each = loadConfig({ MODEL_MEMORY_BUDGET_MB: 'cpu=16000, cuda:0=80000,CUDA:1=40000.5' }).MODEL_MEMORY_BUDGET_MB;
    assert.equal(budgetOf(each, 'cpu'), 16000 * MIB);
    assert.equal(budgetOf(each, 'cuda:0'), 80000 * MIB);
    assert.equal(budgetOf(each, 'cuda:1'), Math.round(40000.5 * MIB));
    assert.equal(budgetOf(each, 'cuda:2'), undefined);
    assert.equal(budgetOf(loadConfig({ MODEL_MEMORY_BUDGET_MB: 'cuda=8000' }).MODEL_MEMORY_BUDGET_MB, 'cuda:0'), 8000 * MIB, 'cuda is cuda:0');
  });

  it('bad values: a start-up error listing every one', () => {
    const listed = problems({ MODEL_MEMORY_BUDGET_MB: 'cpu=lots,gpu=5,cuda:0,cpu=3, cuda:1=0', LLM_PARALLEL: 'x' });
    const budget = listed.filter((p) => p.startsWith('MODEL_MEMORY_BUDGET_MB'));
    assert.equal(budget.length, 5, listed.join('\n'));
    assert.match(budget.join('\n'), /"cpu=lots": must be a positive number of MB/);
    assert.match(budget.join('\n'), /"gpu=5": unknown device "gpu"/);
    assert.match(budget.join('\n'), /"cuda:0": must be device=MB/);
    assert.match(budget.join('\n'), /"cpu=3": cpu is named twice/);
    assert.match(budget.join('\n'), /"cuda:1=0": must be a positive number of MB/);
    assert.ok(listed.some((p) => p.startsWith('LLM_PARALLEL')), 'beside the other problems');
    assert.match(problems({ MODEL_MEMORY_BUDGET_MB: '-5' }).join('\n'), /MODEL_MEMORY_BUDGET_MB: must be a positive number of MB, or device=MB pairs .* \(got "-5"\)/);
  });

  it('memory_mb in the models file: a positive number, checked with the rest of the file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'budget-'));
    try {
      const file = path.join(dir, 'models.json');
      fs.writeFileSync(file, JSON.stringify({ llm: [{ id: 'a', model: 'a.gguf', memory_mb: 0 }, { id: 'b', model: 'b.gguf', memory_mb: 'big' }] }));
      const listed = problems({ MODELS_FILE: file });
      assert.ok(listed.some((p) => p.includes('llm[0].memory_mb')), listed.join('\n'));
      assert.ok(listed.some((p) => p.includes('llm[1].memory_mb')), listed.join('\n'));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a model counts memory_mb when declared, else the larger of estimate and measured; auto counts as cpu', () => {
    assert.equal(needBytes({ device: 'cpu', declaredBytes: 100, estimatedBytes: 500 }, 900), 100);
    assert.equal(needBytes({ device: 'cpu', estimatedBytes: 500 }, 900), 900);
    assert.equal(needBytes({ device: 'cpu', estimatedBytes: 500 }, 0), 500);
    assert.deepEqual(['auto', 'cuda', 'cuda:1', 'CPU'].map(accountingDevice), ['cpu', 'cuda:0', 'cuda:1', 'cpu']);
  });

  it('estimates from the model file: GGUF × 1.25, Whisper + a fixed allowance, 0 for a file not on disk yet', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'budget-'));
    try {
      const gguf = path.join(dir, 'm.gguf');
      const bin = path.join(dir, 'w.bin');
      fs.writeFileSync(gguf, Buffer.alloc(4000));
      fs.writeFileSync(bin, Buffer.alloc(4000));
      assert.equal(estimateBytes('llm', gguf), 5000 + LLM_RUNNER_BYTES);
      assert.equal(estimateBytes('stt', bin), 4000 + WHISPER_ALLOWANCE_BYTES);
      assert.equal(estimateBytes('llm', 'hf:org/repo/m.gguf'), 0);
      assert.equal(estimateBytes('stt', 'base.en'), 0);
      assert.equal(estimateBytes('llm', path.join(dir, 'missing.gguf')), 0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
