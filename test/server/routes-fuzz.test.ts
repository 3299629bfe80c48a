// A bounded fuzz of every route of a real `featherman serve` process on its three listeners: the
// hooks (plain HTTP), admission (HTTPS) and the query API (with and without a token; no router, so
// a request that gets through everything answers 503). 10,000+ hostile requests built from valid
// ones (test/helpers/fuzz.ts: deep nesting, big and wide bodies, odd and duplicate keys, huge
// numbers, invalid UTF-8 and foreign encodings, odd content types, junk): no 5xx other than the
// query API's 503 "no query router", no dropped connection except for bodies over the limit, and
// afterwards the process still answers every listener. FUZZ_SEED reproduces a run; FUZZ_CASES sizes it.
import t from 'tap';
import { request as httpRequest, Agent as HttpAgent } from 'node:http';
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as pool from '../../hooks/pool.js';
import type { KubeObject } from '../../lib/k8s/metacontroller.js';
import { packageRoot } from '../../lib/lake/config.js';
import { featherman } from '../helpers/cli.js';
import { ON_LOOPBACK, startServe, withTls } from '../helpers/serve.js';
import { hostile, mutator, prng } from '../helpers/fuzz.js';
import { catalogObject, ctx, observed, syncRequest } from '../helpers/hook-fixtures.js';
import { readmeFixture, review } from '../helpers/admission.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20261130);
const CASES = Number(process.env.FUZZ_CASES ?? 10_000);
const TOKEN = 'fuzz-token-0123456789';
const root = packageRoot();
const dir = t.testdir({});

// ---- the server --------------------------------------------------------------------------------

const certs = await featherman(['certs', '--out', join(dir, 'certs'), '--dns', 'localhost', '--ip', '127.0.0.1'], {});
t.equal(certs.code, 0, certs.stderr);
const ca = readFileSync(join(dir, 'certs', 'ca.crt'));
// No KUBECONFIG and no cluster: the query API has no router. The token lets requests past auth.
const serve = await startServe([...ON_LOOPBACK, ...withTls(join(dir, 'certs'))], { HOME: dir, FEATHERMAN_API_TOKENS: TOKEN });
t.teardown(() => {
  serve.child.kill('SIGKILL');
});
// Every log line is checked as it comes: for failed requests and for the token.
const seen = { failure: '', token: false };
serve.onLine((line) => {
  if (!seen.failure && /"level":(50|60)/.test(line)) seen.failure = line.slice(0, 500);
  if (line.includes(TOKEN)) seen.token = true;
});
let exitCode: number | null | undefined;
serve.child.on('exit', (code) => {
  exitCode = code;
});
const ports = { ...serve.ports, httpsPort: serve.ports.httpsPort! };

// ---- a client that sends raw bytes ---------------------------------------------------------------

const agents = { http: new HttpAgent({ keepAlive: true, maxSockets: 8 }), https: new HttpsAgent({ keepAlive: true, maxSockets: 8, ca }) };
t.teardown(() => {
  agents.http.destroy();
  agents.https.destroy();
});

interface Sent {
  status?: number;
  body?: string;
  error?: string;
}

function send(
  listener: 'http' | 'hooks' | 'https',
  method: string,
  path: string,
  body: Buffer | undefined,
  headers: Record<string, string>,
): Promise<Sent> {
  const tls = listener === 'https';
  const port = listener === 'http' ? ports.httpPort : listener === 'hooks' ? ports.hooksPort : ports.httpsPort;
  return new Promise((resolve) => {
    const req = (tls ? httpsRequest : httpRequest)(
      {
        host: tls ? 'localhost' : '127.0.0.1',
        port,
        method,
        path,
        agent: tls ? agents.https : agents.http,
        headers: { ...headers, ...(body ? { 'content-length': String(body.length) } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (err) => resolve({ status: res.statusCode, error: err.message }));
      },
    );
    req.on('error', (err) => resolve({ error: (err as NodeJS.ErrnoException).code ?? err.message }));
    req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
    req.end(body);
  });
}

// ---- valid requests to start from ----------------------------------------------------------------

const readyCatalog = { ...observed(catalogObject()), status: { phase: 'Ready' } };
const poolParent: pool.PoolObject = {
  apiVersion: 'ducklake.featherman.dev/v1alpha1',
  kind: 'DuckLakePool',
  metadata: { name: 'default-pool', namespace: 'analytics', uid: 'c0ffee00-0000-4000-8000-0000000000cc', generation: 1 },
  spec: { catalogRef: { name: 'example' }, minSize: 1, maxSize: 3 },
};
// Worker pods the pool owns, on a port that refuses at once, so the stats fetch costs nothing.
const poolPods: KubeObject[] = pool
  .sync(syncRequest(poolParent, [], [readyCatalog], ['Pod.v1']), ctx)
  .children.filter((c) => c.kind === 'Pod')
  .map((p) => ({
    ...p,
    metadata: {
      ...p.metadata,
      namespace: 'analytics',
      annotations: { ...p.metadata.annotations, [pool.STATS_PORT_ANNOTATION]: '1' },
      ownerReferences: [
        { apiVersion: poolParent.apiVersion, kind: 'DuckLakePool', name: 'default-pool', uid: poolParent.metadata.uid, controller: true },
      ],
    },
    status: { phase: 'Running', podIP: '127.0.0.1' },
  }));
const POOL_TYPES = ['Pod.v1', 'Service.v1', 'PodDisruptionBudget.policy/v1', 'NetworkPolicy.networking.k8s.io/v1'];

interface Target {
  listener: 'http' | 'hooks' | 'https';
  path: string;
  example: unknown;
  limit: number;
  headers?: Record<string, string>;
}
const HOOKS_LIMIT = 16 * 1024 * 1024;
const targets: Target[] = [
  ...['sync', 'finalize', 'customize'].flatMap((hook): Target[] => [
    {
      listener: 'hooks',
      path: `/hooks/ducklaketables/${hook}`,
      example: JSON.parse(readFileSync(join(root, 'examples', 'hook-requests', 'table-sync.json'), 'utf8')),
      limit: HOOKS_LIMIT,
    },
    {
      listener: 'hooks',
      path: `/hooks/ducklakecatalogs/${hook}`,
      example: syncRequest(catalogObject(), [], [], ['PersistentVolumeClaim.v1', 'Job.batch/v1', 'CronJob.batch/v1']),
      limit: HOOKS_LIMIT,
    },
    {
      listener: 'hooks',
      path: `/hooks/ducklakepools/${hook}`,
      example: syncRequest(poolParent, poolPods, [readyCatalog], POOL_TYPES),
      limit: HOOKS_LIMIT,
    },
  ]),
  ...['validate', 'mutate'].flatMap((mode): Target[] => [
    { listener: 'https', path: `/admission/${mode}`, example: review('CREATE', readmeFixture('table')), limit: 8 * 1024 * 1024 },
    {
      listener: 'https',
      path: `/admission/${mode}`,
      example: review(
        'UPDATE',
        { ...readmeFixture('catalog'), metadata: { ...readmeFixture('catalog').metadata, deletionTimestamp: '2026-11-30T00:00:00Z' } },
        readmeFixture('catalog'),
      ),
      limit: 8 * 1024 * 1024,
    },
    { listener: 'https', path: `/admission/${mode}`, example: review('CREATE', readmeFixture('pool')), limit: 8 * 1024 * 1024 },
  ]),
  {
    listener: 'http',
    path: '/v1/query',
    example: { catalog: 'default', sql: 'SELECT 42 AS answer', format: 'json', timeoutMs: 1000 },
    limit: 1024 * 1024,
    headers: { authorization: `Bearer ${TOKEN}` },
  },
  {
    listener: 'http',
    path: '/v1/query',
    example: { catalog: 'default', pool: 'p', namespace: 'n', sql: 'SELECT 1' },
    limit: 1024 * 1024,
    headers: { authorization: `Bearer ${TOKEN}` },
  },
  { listener: 'http', path: '/v1/query', example: { catalog: 'default', sql: 'SELECT 1' }, limit: 1024 * 1024 },
];

t.test(`fuzz: ${CASES} hostile requests over hooks, admission and the query API, seed ${SEED}`, async (t) => {
  const rand = prng(SEED);
  const mutate = mutator(SEED, ['\u0000', '\ud83e\udd86', 'x'.repeat(70_000), 1e308, -1e-308, { constructor: { prototype: {} } }]);
  const started = Date.now();
  const counts: Record<string, number> = {};
  const failures: string[] = [];
  let bytes = 0;
  let next = 0;
  const one = async (i: number) => {
    const target = targets[Math.floor(rand() * targets.length)]!;
    // Half the cases break the text of a (possibly mutated) valid request; a quarter only mutate its
    // structure; the rest change the HTTP side: method, path, query string, or a missing or wrong token.
    const roll = rand();
    const example = roll < 0.75 && rand() < 0.5 ? mutate(target.example) : target.example;
    let body: Buffer | undefined;
    let contentType: string | undefined = 'application/json';
    let kind = 'mutated';
    let oversized = false;
    let method = 'POST';
    let path = target.path;
    const headers: Record<string, string> = { ...target.headers };
    if (roll < 0.5) {
      const h = hostile(JSON.stringify(example), target.limit, rand);
      ({ body, contentType, kind } = h);
      oversized = h.oversized ?? false;
    } else {
      body = Buffer.from(JSON.stringify(example));
      if (roll >= 0.75) {
        const http = Math.floor(rand() * 6);
        if (http === 0) {
          method = ['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'][Math.floor(rand() * 5)]!;
          kind = `method ${method}`;
        }
        if (http === 1) {
          path = `${path}?token=${TOKEN}&x=${'%ff'.repeat(50)}`;
          kind = 'query string';
        }
        if (http === 2) {
          path = `${path}/${'a'.repeat(Math.floor(rand() * 5000))}`;
          kind = 'long path';
        }
        if (http === 3) {
          headers.authorization = ['Bearer', 'Bearer  ', `Basic ${TOKEN}`, `Bearer ${TOKEN}x`, 'x'.repeat(8000)][Math.floor(rand() * 5)]!;
          kind = 'bad token';
        }
        if (http === 4) {
          body = undefined;
          kind = 'no body';
        }
        if (http === 5) {
          path = path.replace('/hooks/', '/hooks/../hooks/').replace('/admission/', '/%61dmission/');
          kind = 'encoded path';
        }
      }
    }
    if (contentType !== undefined) headers['content-type'] = contentType;
    bytes += body?.length ?? 0;
    const res = await send(target.listener, method, path, body, headers);
    const key = res.status ? String(res.status) : `error ${res.error}`;
    counts[key] = (counts[key] ?? 0) + 1;
    const noRouter = res.status === 503 && target.path === '/v1/query' && /no query router/.test(res.body ?? '');
    const where = `#${i} ${target.listener} ${method} ${path.slice(0, 80)} (${kind})`;
    if (res.status === undefined && !oversized) failures.push(`${where}: no answer (${res.error})`);
    if (res.status !== undefined && res.status >= 500 && !noRouter) failures.push(`${where}: ${res.status} ${res.body?.slice(0, 300)}`);
    if (res.status !== undefined && res.status >= 400 && res.status < 500 && !/"message":"[^"]/.test(res.body ?? ''))
      failures.push(`${where}: ${res.status} without a message: ${res.body?.slice(0, 200)}`);
  };
  // Eight requests in flight: the listeners see concurrency, and the run stays short.
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < CASES) await one(next++);
    }),
  );
  const ms = Date.now() - started;
  t.same(failures.slice(0, 10), [], `no 5xx, no dropped connection, a message with every 4xx (${failures.length} failures)`);
  t.equal(exitCode, undefined, 'the server is still running');
  t.equal(seen.failure, '', 'and logged no request failure');
  t.ok(
    (counts['200'] ?? 0) > 500 &&
      (counts['400'] ?? 0) > 1000 &&
      (counts['401'] ?? 0) > 50 &&
      (counts['404'] ?? 0) > 50 &&
      (counts['413'] ?? 0) > 5 &&
      (counts['503'] ?? 0) > 100,
    `a mix of outcomes over ${CASES} requests, ${Math.round(bytes / 1e6)} MB in ${ms} ms: ${JSON.stringify(counts)}`,
  );

  // Afterwards every listener still answers, and valid requests still work.
  for (const [listener, path] of [
    ['http', '/healthz'],
    ['hooks', '/readyz'],
    ['https', '/readyz'],
  ] as const) {
    const res = await send(listener, 'GET', path, undefined, {});
    t.equal(res.status, 200, `${listener} ${path} answers`);
  }
  const sync = await send(
    'hooks',
    'POST',
    '/hooks/ducklaketables/sync',
    readFileSync(join(root, 'examples', 'hook-requests', 'table-sync.json')),
    { 'content-type': 'application/json' },
  );
  t.equal(sync.status, 200, 'a valid sync still works');
  const validate = await send(
    'https',
    'POST',
    '/admission/validate',
    Buffer.from(JSON.stringify(review('CREATE', readmeFixture('pool'), undefined, 'after-fuzz'))),
    { 'content-type': 'application/json' },
  );
  t.equal(validate.status, 200, 'a valid review still works');
  t.match(JSON.parse(validate.body ?? '{}'), { response: { uid: 'after-fuzz' } });
  t.equal(seen.token, false, 'the token never reached the log, not even from query strings');
});
