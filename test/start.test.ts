// `npm start`, the README's first command, and the query the README sends to it: the service on
// the embedded lake answers through its local warm workers.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../lib/lake/config.js';

const root = packageRoot();
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const section = readme.slice(readme.indexOf('## Two commands'), readme.indexOf('## Versions'));
const curl = [...section.matchAll(/```bash\n([\s\S]*?)```/g)].map((m) => m[1]!.trim()).find((b) => b.startsWith('curl'))!;

t.test('npm start serves hooks, health, metrics and /v1/query on the embedded lake', async (t) => {
  const server = spawn('npm', ['start'], { cwd: root, detached: true, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, FEATHERMAN_API_TOKENS: '' } });
  let stderr = '';
  server.stderr!.on('data', (d) => { stderr += d; });
  let exited: number | null | undefined;
  server.on('exit', (code) => { exited = code; });
  t.teardown(() => { try { process.kill(-server.pid!, 'SIGTERM'); } catch { /* gone */ } });
  const deadline = Date.now() + 120_000;
  let ready = false;
  // A server that exits (bad state, port taken) fails the test at once, with its own last words.
  while (Date.now() < deadline && !ready && exited === undefined) {
    try { ready = (await fetch('http://127.0.0.1:8080/readyz')).ok; } catch { /* starting */ }
    if (!ready) await new Promise((r) => setTimeout(r, 300));
  }
  t.ok(ready, `the service became ready on :8080${exited !== undefined ? ` (npm start exited ${exited})` : ''} ${stderr.slice(-500)}`);
  if (!ready) return;
  const r = spawnSync('bash', ['-euo', 'pipefail', '-c', curl], { cwd: root, encoding: 'utf8', timeout: 30_000 });
  t.equal(r.status, 0, r.stderr);
  t.match(JSON.parse(r.stdout), { columns: ['answer'], rows: [{ answer: 42 }], rowCount: 1 });
  const metrics = await (await fetch('http://127.0.0.1:8080/metrics')).text();
  t.match(metrics, /ducklake_pool_size_current\{pool="default",namespace="local"\} 2/, 'two local workers');
  const denied = await fetch('http://127.0.0.1:8080/v1/query', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"catalog":"default","sql":"SELECT 1"}' });
  t.equal(denied.status, 401, 'no token, no query');
});
