/** Watching a service's model runner processes from a test (Linux: ps and /proc). */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import type { ServiceProcess } from './process.ts';

/** The pids of the child processes of `parent`, only those whose command line names `entry` when given (`llm-runner`, `stt-runner`). */
export function childPids(parent: number, entry?: string): number[] {
  let out: string;
  try {
    out = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(parent)], { encoding: 'utf8' });
  } catch {
    return []; // ps exits 1 when there is no such process
  }
  return out
    .split('\n')
    .filter((l) => l.trim() && (entry === undefined || l.includes(entry)))
    .map((l) => Number(l.trim().split(/\s+/)[0]));
}

/** CPU seconds a process has used (user + system), from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime (fields 14, 15) in clock ticks
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Polls `probe` until it gives a value other than undefined or false; throws naming `what` past the deadline. */
export async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 60_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** SIGKILLs each runner `find` lists the moment it appears (long before its model has loaded), until `count` have died. */
export async function killRunnersWhileLoading(find: () => number[], count: number): Promise<void> {
  const killed = new Set<number>();
  await until(
    `${count} runners killed while loading`,
    () => {
      for (const pid of find()) {
        if (killed.has(pid)) continue;
        process.kill(pid, 'SIGKILL');
        killed.add(pid);
      }
      return killed.size >= count || undefined;
    },
    60_000,
    10,
  );
}

/**
 * The two ways a gateway goes, each with a loaded runner `find` lists: `graceful` is SIGTERMed (it
 * must exit 0 and stop its runner), `killed` gets SIGKILL (its orphaned runner must notice and exit).
 */
export async function assertNoOrphanRunners(graceful: ServiceProcess, killed: ServiceProcess, find: (gatewayPid: number) => number[]): Promise<void> {
  const [a] = find(graceful.child.pid!);
  const [b] = find(killed.child.pid!);
  assert.ok(a && b, 'both gateways have a runner');
  graceful.child.kill('SIGTERM');
  assert.equal(await graceful.exited, 0);
  await until('the runner of the SIGTERMed gateway to exit', () => !alive(a) || undefined, 10_000);
  killed.child.kill('SIGKILL');
  await killed.exited;
  await until('the orphaned runner to notice and exit', () => !alive(b) || undefined, 10_000);
}
