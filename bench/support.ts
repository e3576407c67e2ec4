/** Shared helpers for the benchmarks. */
export { freePort, waitForHealth } from '../test/helpers/process.ts';
import { findOnPath } from '../src/observability/gpu.ts';

export function findTaskset(): string | undefined {
  return findOnPath('taskset');
}
