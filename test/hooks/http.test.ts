// The hooks over HTTP: the README's curl block against a listening `featherman serve`, malformed
// requests (400 with a message, never 500), and a bounded fuzz of mutated requests.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildServer } from '../../lib/server/server.js';
import { packageRoot } from '../../lib/lake/config.js';
import { mutator } from '../helpers/fuzz.js';
import { freePort } from '../helpers/minio.js';

const root = packageRoot();
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const section = readme.slice(readme.indexOf('## Hooks by hand'));
const [serveCommand, curlCommand] = [...section.matchAll(/```bash\n([\s\S]*?)```/g)].slice(0, 2).map((m) => m[1]!.trim());
const example = JSON.parse(readFileSync(join(root, 'examples', 'hook-requests', 'table-sync.json'), 'utf8'));

t.test('the README serve and curl commands return the table status and its apply Job', async (t) => {
  t.equal(serveCommand, 'npx featherman serve --port 18080 --hooks-port 18081');
  t.match(curlCommand, /^curl -s -X POST localhost:18081\/hooks\//);
  // The README's commands as written, but on free ports: a fixed port may be taken by anything
  // else on the machine (another test file, tap runs two at once).
  const [httpPort, hooksPort] = [await freePort(), await freePort()];
  const onFreePorts = (command: string) => command.replaceAll('18080', String(httpPort)).replaceAll('18081', String(hooksPort));
  // The server in its own process group, so the whole group (npx and node) stops afterwards.
  const server = spawn('bash', ['-c', onFreePorts(serveCommand!)], {
    cwd: root,
    detached: true,
    stdio: 'ignore',
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
  });
  t.teardown(() => {
    try {
      process.kill(-server.pid!, 'SIGTERM');
    } catch {
      /* already gone */
    }
  });
  let exited = false;
  server.once('exit', () => (exited = true));
  // Until it answers or exits; the bound only catches a hang (npx and a cold start may be slow on a loaded machine).
  const deadline = Date.now() + 120_000;
  let ready = false;
  while (Date.now() < deadline && !ready && !exited) {
    try {
      ready = (await fetch(`http://127.0.0.1:${hooksPort}/readyz`)).ok;
    } catch {
      /* starting */
    }
    if (!ready) await new Promise((r) => setTimeout(r, 200));
  }
  t.ok(ready, `\`${serveCommand}\` became ready on the hooks port`);
  const hooksOnQueryPort = await fetch(`http://127.0.0.1:${httpPort}/hooks/ducklaketables/sync`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(example),
  });
  t.equal(hooksOnQueryPort.status, 404, 'the query port does not serve the hooks');
  const admissionOnHooksPort = await fetch(`http://127.0.0.1:${hooksPort}/admission/validate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{}',
  });
  t.equal(admissionOnHooksPort.status, 404, 'nor does the hooks port serve admission');
  const r = spawnSync('bash', ['-euo', 'pipefail', '-c', onFreePorts(curlCommand!)], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  t.equal(r.status, 0, r.stderr);
  const response = JSON.parse(r.stdout.trim().split('\n').pop()!);
  t.same(Object.keys(response).sort(), ['children', 'resyncAfterSeconds', 'status']);
  t.match(response.status, {
    phase: 'Applying',
    catalog: 'example',
    table: 'main.users',
    conditions: [{ type: 'Ready', status: 'False', reason: 'ApplyRunning' }],
  });
  t.equal(response.children.length, 1);
  t.match(response.children[0], { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: /^users-apply-[0-9a-f]{10}$/ } });
  const env = response.children[0].spec.template.spec.containers[0].env as { name: string; value?: string }[];
  t.same(JSON.parse(env.find((e) => e.name === 'FEATHERMAN_TABLE_SPEC')!.value!).format, {
    compression: 'ZSTD',
    partitioning: ['day(created_at)'],
  });
  t.match(
    env.find((e) => e.name === 'FEATHERMAN_DATA_PATH'),
    { value: 's3://my-data-lake/lakes/example/data/' },
  );
});

t.test('malformed hook requests get a 400 with a message', async (t) => {
  const app = await buildServer({ plugins: ['hooks'] });
  t.teardown(() => app.close());
  const post = (url: string, payload: unknown, raw = false) =>
    app.inject({
      method: 'POST',
      url,
      headers: { 'content-type': 'application/json' },
      payload: raw ? (payload as string) : JSON.stringify(payload),
    });
  const cases: [string, unknown, RegExp, boolean?][] = [
    ['/hooks/ducklaketables/sync', 'not json', /not valid JSON/, true],
    ['/hooks/ducklaketables/sync', {}, /must have required property 'parent'/],
    ['/hooks/ducklaketables/sync', { parent: { kind: 'DuckLakeTable' } }, /must have required property/],
    ['/hooks/ducklaketables/sync', { ...example, children: { 'Job.batch/v1': [] } }, /children/],
    ['/hooks/ducklaketables/sync', { ...example, parent: { ...example.parent, kind: 'DuckLakeCatalog' } }, /expected DuckLakeTable/],
    ['/hooks/ducklaketables/customize', { parent: 'x' }, /parent must be object/],
  ];
  for (const [url, body, message, raw] of cases) {
    const res = await post(url, body, raw);
    t.equal(res.statusCode, 400, `${url} ${JSON.stringify(body).slice(0, 60)}`);
    t.match(res.json().message, message);
  }
  const unknown = await post('/hooks/nothings/sync', example);
  t.equal(unknown.statusCode, 404);
  t.match(unknown.json().message, /no hooks for "nothings"/);
});

t.test('a bounded fuzz of mutated sync requests never gets a 500', async (t) => {
  const app = await buildServer({ plugins: ['hooks'] });
  t.teardown(() => app.close());
  const mutate = mutator(20261124, ['"; DROP TABLE x; --', 'TIMESTAMP WITH TIME ZONE']);
  const counts: Record<number, number> = {};
  const N = 3000;
  for (let i = 0; i < N; i++) {
    const hook = ['sync', 'finalize', 'customize'][i % 3];
    const res = await app.inject({ method: 'POST', url: `/hooks/ducklaketables/${hook}`, payload: mutate(example) });
    counts[res.statusCode] = (counts[res.statusCode] ?? 0) + 1;
    if (res.statusCode >= 500) {
      t.fail(`500 for a mutated request: ${res.body}`);
      break;
    }
  }
  t.notOk(
    Object.keys(counts).some((c) => Number(c) >= 500),
    `status codes over ${N} requests: ${JSON.stringify(counts)}`,
  );
});

t.test('hook calls are counted in /metrics by resource, hook and status code', async (t) => {
  const app = await buildServer({ plugins: ['hooks', 'metrics'] });
  t.teardown(() => app.close());
  await app.inject({ method: 'POST', url: '/hooks/ducklaketables/sync', payload: example });
  await app.inject({ method: 'POST', url: '/hooks/ducklaketables/sync', payload: {} });
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  t.match(text, /featherman_hook_requests_total\{resource="ducklaketables",hook="sync",code="200"\} [1-9]/);
  t.match(text, /featherman_hook_requests_total\{resource="ducklaketables",hook="sync",code="400"\} [1-9]/);
  t.match(text, /featherman_hook_duration_seconds_count\{resource="ducklaketables",hook="sync"\} [1-9]/);
});
