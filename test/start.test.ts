// `npm start`, the README's first command, and the query the README sends to it: the service on
// the embedded lake answers through its local warm workers. It listens on free ports (--port 0),
// so it never collides with another service or test, and the README's curl is sent verbatim but
// for the port.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { packageRoot } from '../lib/lake/config.js';

const root = packageRoot();
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const section = readme.slice(readme.indexOf('## Two commands'), readme.indexOf('## Versions'));
const curl = [...section.matchAll(/```bash\n([\s\S]*?)```/g)].map((m) => m[1]!.trim()).find((b) => b.startsWith('curl'))!;

t.test('npm start serves hooks, health, metrics and /v1/query on the embedded lake', async (t) => {
  t.match(curl, /\blocalhost:8080\//, "the README's query goes to the default port");
  const server = spawn('npm', ['start', '--', '--port', '0', '--hooks-port', '0', '--host', '127.0.0.1'], {
    cwd: root,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, FEATHERMAN_API_TOKENS: '' },
  });
  let stderr = '';
  server.stderr!.on('data', (d) => {
    stderr += d;
  });
  t.teardown(() => {
    try {
      process.kill(-server.pid!, 'SIGTERM');
    } catch {
      /* gone */
    }
  });
  // The service logs its ports once every listener listens; the embedded pool's workers are up by
  // then (readiness waits for them). A server that exits first fails the test with its last words.
  const ports = await new Promise<{ httpPort: number; hooksPort: number }>((resolve, reject) => {
    createInterface({ input: server.stdout! }).on('line', (line) => {
      let entry: { msg?: unknown; httpPort?: number; hooksPort?: number };
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      } // npm's and the setup's own output
      if (entry.msg === 'featherman serve listening') resolve({ httpPort: entry.httpPort!, hooksPort: entry.hooksPort! });
    });
    server.once('exit', (code) => reject(new Error(`npm start exited ${code} before listening: ${stderr.slice(-500)}`)));
  });
  const base = `http://127.0.0.1:${ports.httpPort}`;
  t.equal((await fetch(`${base}/readyz`)).status, 200, 'ready once listening');
  t.equal((await fetch(`http://127.0.0.1:${ports.hooksPort}/readyz`)).status, 200, 'the hooks listener too');
  const r = spawnSync('bash', ['-euo', 'pipefail', '-c', curl.replace('localhost:8080/', `127.0.0.1:${ports.httpPort}/`)], {
    cwd: root,
    encoding: 'utf8',
    timeout: 120_000, // a hang guard only
  });
  t.equal(r.status, 0, r.stderr);
  t.match(JSON.parse(r.stdout), { columns: ['answer'], rows: [{ answer: 42 }], rowCount: 1 });
  const metrics = await (await fetch(`${base}/metrics`)).text();
  t.match(metrics, /ducklake_pool_size_current\{pool="default",namespace="local"\} 2/, 'two local workers');
  const denied = await fetch(`${base}/v1/query`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"catalog":"default","sql":"SELECT 1"}',
  });
  t.equal(denied.status, 401, 'no token, no query');
});
