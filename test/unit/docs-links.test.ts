/**
 * Every relative link in README.md and docs/*.md points to a file that exists and, with a #fragment
 * into a Markdown file, to a heading that exists there (GitHub's anchor rules), so moving a section
 * between files cannot leave a dead link behind.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';

/** GitHub's heading anchor: lower case, punctuation dropped (not `-` or `_`), spaces → `-`; repeats get -1, -2, … */
export function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  let fence = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fence = !fence;
    const heading = fence ? null : /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!heading) continue;
    const base = (heading[1] ?? '')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** Markdown links `[text](target)` outside code fences and inline code. */
function links(markdown: string): string[] {
  let fence = false;
  const out: string[] = [];
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fence = !fence;
    if (fence) continue;
    const prose = line.replace(/`[^`]*`/g, '');
    for (const m of prose.matchAll(/\]\(([^)\s]+)\)/g)) if (m[1]) out.push(m[1]);
  }
  return out;
}

const files = ['README.md', ...fs.readdirSync('docs').filter((f) => f.endsWith('.md')).map((f) => path.join('docs', f))];

describe('documentation links', () => {
  it('finds GitHub anchors the way GitHub writes them', () => {
    const a = anchors('# Speech-to-text\n## `/ws/stt`: streaming transcription\n## Security: API keys\n## Errors\n## Errors\n```\n# not a heading\n```');
    assert.deepEqual([...a], ['speech-to-text', 'wsstt-streaming-transcription', 'security-api-keys', 'errors', 'errors-1']);
  });

  for (const file of files) {
    it(`${file}: every relative link and anchor resolves`, () => {
      const text = fs.readFileSync(file, 'utf8');
      const broken: string[] = [];
      for (const target of links(text)) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // http:, https:, mailto:
        const [pathPart, fragment] = target.split('#', 2);
        const resolved = pathPart ? path.join(path.dirname(file), decodeURIComponent(pathPart)) : file;
        if (!fs.existsSync(resolved)) {
          broken.push(`${target} (no file ${resolved})`);
          continue;
        }
        if (fragment !== undefined && resolved.endsWith('.md') && !anchors(fs.readFileSync(resolved, 'utf8')).has(fragment)) {
          broken.push(`${target} (no heading #${fragment} in ${resolved})`);
        }
      }
      assert.deepEqual(broken, [], `broken links in ${file}`);
    });
  }
});
