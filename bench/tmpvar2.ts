import autocannon from 'autocannon';
import { spawn } from 'node:child_process';
import { freePort, waitForHealth } from '../test/helpers/process.ts';
for (const round of [1, 2]) for (const v of ['A', 'B', 'C', 'D']) {
  const port = await freePort();
  const c = spawn(process.execPath, ['--import', 'tsx', 'bench/tmp-variant-server.ts'], { env: { ...process.env, PORT: String(port), VARIANT: v }, stdio: 'inherit' });
  await waitForHealth(`http://127.0.0.1:${port}`);
  await autocannon({ url: `http://127.0.0.1:${port}/health`, connections: 10, duration: 1 });
  const r = await autocannon({ url: `http://127.0.0.1:${port}/health`, connections: 10, duration: 4 });
  console.log(round, v, r.requests.average);
  c.kill();
}
