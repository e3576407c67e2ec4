#!/usr/bin/env node
// The end of a full test run: no secret a test configured or presented (API keys, upstream keys)
// may appear in any log line any app or service wrote during the run (test/helpers/test-logs.ts).
// Usage: node scripts/check-test-logs.mjs <TEST_LOG_DIR> [--lenient: a filtered run may have nothing to check]
import fs from 'node:fs';
import path from 'node:path';

const MIN_LENGTH = 8; // shorter test keys ("k") would match ordinary words; they are listed, not checked

const dir = process.argv[2];
const files = fs.existsSync(dir) ? fs.readdirSync(dir) : [];
const secrets = [...new Set(files.filter((f) => f.startsWith('secrets-')).flatMap((f) => fs.readFileSync(path.join(dir, f), 'utf8').split('\n')).map((s) => s.trim()).filter(Boolean))];
const checked = secrets.filter((s) => s.length >= MIN_LENGTH);
const skipped = secrets.filter((s) => s.length < MIN_LENGTH);
const logs = files.filter((f) => f.endsWith('.log'));
let lines = 0;
let bytes = 0;
const leaks = [];
for (const file of logs) {
  const text = fs.readFileSync(path.join(dir, file), 'utf8');
  bytes += text.length;
  for (const line of text.split('\n')) {
    if (!line) continue;
    lines++;
    for (const secret of checked) if (line.includes(secret)) leaks.push({ file, secret: `${secret.slice(0, 3)}…`, line: line.slice(0, 200) });
  }
}
console.log(`# log check: ${logs.length} log files, ${lines} lines (${(bytes / 1e6).toFixed(1)} MB); ${checked.length} secrets checked, ${skipped.length} too short to check (${skipped.join(', ')}); leaks: ${leaks.length}`);
for (const leak of leaks.slice(0, 20)) console.error(`LEAK in ${leak.file}: ${leak.secret}: ${leak.line}`);
if (leaks.length > 0) process.exit(1);
if ((logs.length === 0 || checked.length === 0) && !process.argv.includes('--lenient')) {
  console.error('the log check saw no logs or no secrets: the capture is broken');
  process.exit(1);
}
