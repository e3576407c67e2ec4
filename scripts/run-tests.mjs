#!/usr/bin/env node
// Runs every test/**/*.test.ts with Node's own test runner (TypeScript through tsx); the services they
// start run the build this script makes first (dist/).
// Usage: node scripts/run-tests.mjs [filter-substring ...]
// Afterwards: no API key used by any test may appear in any log line of the run (scripts/check-test-logs.mjs).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

function find(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return find(full);
    return entry.name.endsWith('.test.ts') ? [full] : [];
  });
}

const filters = process.argv.slice(2);
const files = find('test').filter((f) => filters.length === 0 || filters.some((s) => f.includes(s))).sort();
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
// the service processes the tests start run the compiled build (dist/, as the Docker image does):
// built afresh here from src, so the tests never meet a stale build (test/helpers/process.ts)
fs.rmSync('dist', { recursive: true, force: true });
const build = spawnSync(process.execPath, [path.resolve('node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);
// every app's and service's log lines, and every secret the tests use, for the key check at the end
const logDir = path.resolve('.cache/test-logs');
fs.rmSync(logDir, { recursive: true, force: true });
fs.mkdirSync(logDir, { recursive: true });
// two test files at a time (TEST_CONCURRENCY to change): most of a file's time is spent waiting on
// the processes it starts (a load, a restart backoff, a watchdog), so two share a 2-core machine
// well; every test uses its own ports, directories and processes
const concurrency = Number(process.env.TEST_CONCURRENCY ?? 2);
// the ports a killed run left claimed (test/helpers/process.ts freePort) are free again
fs.rmSync(path.join(os.tmpdir(), 'gemma-3-api-test-ports'), { recursive: true, force: true });
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-reporter=spec', `--test-concurrency=${concurrency}`, '--test-timeout=300000', ...files],
  { stdio: 'inherit', env: { ...process.env, NODE_ENV: 'test', TEST_LOG_DIR: logDir, TEST_SERVICE_ENTRY: 'dist' } },
);
if (result.status !== 0) process.exit(result.status ?? 1);
// a filtered run may start no service at all; the full run must have logs to check
const check = spawnSync(process.execPath, ['scripts/check-test-logs.mjs', logDir, ...(filters.length ? ['--lenient'] : [])], { stdio: 'inherit' });
process.exit(check.status ?? 1);
