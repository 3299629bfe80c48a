// Input hardening on every route, through the real routes (fastify.inject): bodies nested far past
// the limit (Kubernetes itself accepts ~10,000 levels) are a 400 naming the field and the rule in
// the hooks and in admission; prototype keys are refused however the JSON spells them; admission
// rules hold for updates during deletion; the query API checks the token before it reads the body,
// says its size limit, and its request logs carry no query strings; and the pool hook asks only its
// own workers for /stats (real local HTTP servers record who is asked).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import * as pool from '../../hooks/pool.js';
import type { KubeObject } from '../../lib/k8s/metacontroller.js';
import { settingsFromEnv } from '../../lib/k8s/workloads.js';
import { packageRoot } from '../../lib/lake/config.js';
import { buildServer } from '../../lib/server/server.js';
import { fetchWorkerStats } from '../../lib/pool/stats.js';
import { mutateReview, validateReview } from '../../lib/api/admission.js';
import { catalogObject, observed, syncRequest } from '../helpers/hook-fixtures.js';
import { clone, readmeFixture, review, type Obj } from '../helpers/admission.js';

const root = packageRoot();
const tableSync = readFileSync(join(root, 'examples', 'hook-requests', 'table-sync.json'), 'utf8');
const DEEP = 9000;
const deepArray = '['.repeat(DEEP) + ']'.repeat(DEEP);
const deepObject = '{"a":'.repeat(DEEP) + '1' + '}'.repeat(DEEP);

/** The JSON text of `value` with the string "<<DEEP>>" replaced by `deep` (too deep to build as an object and stringify). */
const withDeep = (value: unknown, deep: string) => JSON.stringify(value).replace('"<<DEEP>>"', deep);

const apps = {
  hooks: await buildServer({ plugins: ['hooks'] }),
  admission: await buildServer({ plugins: ['admission'] }),
  query: await buildServer({ plugins: ['query'], apiTokens: ['secret-token'] }),
};
t.teardown(() => Promise.all(Object.values(apps).map((a) => a.close())));
const post = (app: keyof typeof apps, url: string, payload: string | Buffer, headers: Record<string, string> = {}) =>
  apps[app].inject({ method: 'POST', url, headers: { 'content-type': 'application/json', ...headers }, payload });

t.test('a value nested 9,000 deep is a 400 naming the field and the limit, in every hook', async (t) => {
  const request = JSON.parse(tableSync);
  request.parent.spec.columns[0].comment = '<<DEEP>>';
  for (const hook of ['sync', 'finalize', 'customize']) {
    for (const [shape, deep] of [
      ['lists', deepArray],
      ['objects', deepObject],
    ] as const) {
      const res = await post('hooks', `/hooks/ducklaketables/${hook}`, withDeep(request, deep));
      t.equal(res.statusCode, 400, `${hook}, nested ${shape}: ${res.body.slice(0, 200)}`);
      // The path named is the shape's own: [0][0]... for lists, .a.a... for objects.
      const steps = shape === 'lists' ? /(\[0\])+/.source : /(\.a)+/.source;
      t.match(
        res.json().message,
        new RegExp(
          /^the body is too deeply nested: parent\.spec\.columns\[0\]\.comment/.source +
            steps +
            /… is nested more than 100 levels deep \(the limit is 100\)/.source,
        ),
      );
    }
  }
});

t.test('a value nested 9,000 deep is a 400 naming the field in admission: validate and mutate, CREATE and UPDATE', async (t) => {
  const table = readmeFixture('table');
  const deep = clone(table);
  deep.spec.columns[0].comment = '<<DEEP>>';
  const bodies: [string, string][] = [
    ['CREATE', withDeep(review('CREATE', deep), deepArray)],
    ['UPDATE, new object', withDeep(review('UPDATE', deep, table), deepArray)],
    ['UPDATE, old object', withDeep(review('UPDATE', table, deep), deepObject)],
  ];
  for (const [name, body] of bodies) {
    for (const path of ['/admission/validate', '/admission/mutate']) {
      const res = await post('admission', path, body);
      t.equal(res.statusCode, 400, `${path} ${name}`);
      t.match(
        res.json().message,
        /the body is too deeply nested: request\.(object|oldObject)\.spec\.columns\[0\]\.comment.*… is nested more than 100 levels deep/,
        `${path} ${name} names the field`,
      );
    }
  }
});

t.test('called directly, the admission functions refuse a deep spec by name instead of overflowing', async (t) => {
  let deep: unknown = 'x';
  for (let i = 0; i < DEEP; i++) deep = [deep];
  const table = readmeFixture('table');
  const object = clone(table);
  object.spec.columns[0].comment = deep;
  for (const [name, body, field] of [
    ['CREATE', review('CREATE', object), /: spec/],
    ['UPDATE', review('UPDATE', object, table), /: spec/],
    ['UPDATE of the old object', review('UPDATE', table, object), /: oldObject\.spec/],
  ] as const) {
    const verdict = validateReview(body).response;
    t.equal(verdict.allowed, false, `validate ${name}`);
    t.match(
      verdict.status?.message,
      new RegExp(field.source + /\.columns\[0\]\.comment(\[0\])+…: is nested more than 32 levels deep/.source),
      `validate ${name} names the field`,
    );
    t.equal(mutateReview(body).response.allowed, true, `mutate ${name}: no defaults, left to the validating webhook`);
  }
});

t.test('prototype keys are refused however they are spelled, on every route', async (t) => {
  const spellings = ['"__proto__"', '"\\u005f_proto__"', '"\\u005F\\u005Fproto\\u005f\\u005f"', '"__pro\\u0074o__"'];
  for (const key of spellings) {
    const table = JSON.parse(tableSync);
    table.parent.spec.columns[0].comment = '<<KEY>>';
    const hookBody = JSON.stringify(table).replace('"<<KEY>>"', `{${key}: {"polluted": true}}`);
    const hook = await post('hooks', '/hooks/ducklaketables/sync', hookBody);
    t.equal(hook.statusCode, 400, `hooks, ${key}`);
    t.match(
      hook.json().message,
      /must not contain __proto__ or constructor\.prototype keys; found one at parent\.spec\.columns\[0\]\.comment\.__proto__$/,
    );

    const admissionBody = JSON.stringify(review('CREATE', readmeFixture('table'))).replace(
      '"apiVersion"',
      `${key}: {"polluted": true}, "apiVersion"`,
    );
    for (const path of ['/admission/validate', '/admission/mutate']) {
      const res = await post('admission', path, admissionBody);
      t.equal(res.statusCode, 400, `${path}, ${key}`);
      t.match(res.json().message, /must not contain __proto__ or constructor\.prototype keys/);
    }
    const query = await post('query', '/v1/query', `{"catalog":"x","sql":"SELECT 1",${key}:{"x":1}}`, {
      authorization: 'Bearer secret-token',
    });
    t.equal(query.statusCode, 400, `query, ${key}`);
    t.match(query.json().message, /__proto__/);
  }
  const ctor = await post(
    'admission',
    '/admission/validate',
    '{"apiVersion":"admission.k8s.io/v1","a":{"\\u0063onstructor":{"prototype":{}}}}',
  );
  t.equal(ctor.statusCode, 400);
  t.match(ctor.json().message, /constructor\.prototype keys; found one at a\.constructor$/);
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'nothing was polluted');
});

t.test('a made-up hook path is a 404 and adds no time series to /metrics', async (t) => {
  const app = await buildServer({ plugins: ['hooks', 'metrics'] });
  t.teardown(() => app.close());
  for (const plural of ['constructor', '__proto__', 'toString', 'canary-kind-1234']) {
    const res = await app.inject({ method: 'POST', url: `/hooks/${plural}/sync`, payload: JSON.parse(tableSync) });
    t.equal(res.statusCode, 404, plural);
    t.match(res.json().message, /no hooks for/);
  }
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  t.notMatch(text, /canary-kind|constructor|toString/);
  t.match(text, /featherman_hook_requests_total\{resource="unknown",hook="sync",code="404"\} [1-9]/);
});

t.test('bodies that are not UTF-8 JSON are a 400 that says so', async (t) => {
  const invalid = Buffer.concat([Buffer.from('{"catalog":"x","sql":"SELECT \''), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('\'"}')]);
  for (const [app, url, headers] of [
    ['hooks', '/hooks/ducklaketables/sync', {}],
    ['admission', '/admission/validate', {}],
    ['query', '/v1/query', { authorization: 'Bearer secret-token' }],
  ] as const) {
    const res = await post(app, url, invalid, headers);
    t.equal(res.statusCode, 400, `${url}: invalid UTF-8`);
    t.match(res.json().message, /not valid UTF-8/);
    const text = await post(app, url, 'hello', { ...headers, 'content-type': 'text/plain' });
    t.equal(text.statusCode, 400, `${url}: text/plain`);
    t.match(text.json().message, /not valid JSON/);
  }
});

t.test('admission rules still apply to an UPDATE of an object being deleted', async (t) => {
  const table = readmeFixture('table');
  table.spec.format = { partitioning: [] };
  const deleting = (o: Obj) => {
    o.metadata.deletionTimestamp = '2026-11-24T12:00:00Z';
    return o;
  };
  const renamed = deleting(clone(table));
  renamed.spec.name = 'changed';
  const denied = await post('admission', '/admission/validate', JSON.stringify(review('UPDATE', renamed, table)));
  t.equal(denied.statusCode, 200);
  t.equal(denied.json().response.allowed, false, 'changing an immutable field while deleting is refused');
  t.match(denied.json().response.status.message, /spec\.name: is immutable/);
  const broken = clone(table);
  broken.spec.columns[0].type = 'STRNG';
  const finalizerRemoved = deleting(clone(broken));
  finalizerRemoved.metadata.finalizers = [];
  const allowed = await post('admission', '/admission/validate', JSON.stringify(review('UPDATE', finalizerRemoved, broken)));
  t.equal(allowed.json().response.allowed, true, 'a metadata-only update (the finalizer removed) of an invalid object is let through');
  const brokenWhileDeleting = deleting(clone(table));
  brokenWhileDeleting.spec.columns[0].type = 'STRNG';
  const invalid = await post('admission', '/admission/validate', JSON.stringify(review('UPDATE', brokenWhileDeleting, table)));
  t.equal(invalid.json().response.allowed, false, 'an invalid spec change while deleting is refused');
  const mutated = await post(
    'admission',
    '/admission/mutate',
    JSON.stringify(review('UPDATE', deleting(readmeFixture('table')), readmeFixture('table'))),
  );
  t.ok(mutated.json().response.patch, 'defaults are still applied while deleting');
});

t.test('the query API checks the token before it reads the body, and says its size limit', async (t) => {
  const junk = 'x'.repeat(1024 * 1024 - 10);
  const anonymous = await post('query', '/v1/query', junk);
  t.equal(anonymous.statusCode, 401, 'an unauthenticated 1 MB body that is not JSON: 401, so it was never parsed');
  const anonymousHuge = await post('query', '/v1/query', 'x'.repeat(3 * 1024 * 1024));
  t.equal(anonymousHuge.statusCode, 401, 'nor its size checked: 401 before 413');
  const wrong = await post('query', '/v1/query', '{"catalog":"x","sql":"SELECT 1"}', { authorization: 'Bearer wrong' });
  t.equal(wrong.statusCode, 401);
  const huge = await post('query', '/v1/query', JSON.stringify({ catalog: 'x', sql: `SELECT '${'x'.repeat(2 * 1024 * 1024)}'` }), {
    authorization: 'Bearer secret-token',
  });
  t.equal(huge.statusCode, 413);
  t.match(huge.json().message, /the body is larger than the limit of 1048576 bytes/);
  const noRouter = await post('query', '/v1/query', '{"catalog":"x","sql":"SELECT 1"}', { authorization: 'Bearer secret-token' });
  t.equal(noRouter.statusCode, 503, 'authenticated and well-formed: on to the (missing) router');
});

t.test('request logs carry the path without its query string', async (t) => {
  let log = '';
  const stream = new Writable({
    write(chunk, _enc, cb) {
      log += chunk;
      cb();
    },
  });
  const app = await buildServer({ plugins: ['health', 'query'], apiTokens: ['secret-token'], logger: { level: 'info', stream } });
  t.teardown(() => app.close());
  await app.inject({ method: 'GET', url: '/healthz?token=canary-1' });
  await app.inject({ method: 'POST', url: '/v1/query?token=canary-2', headers: { 'content-type': 'application/json' }, payload: '{}' });
  const missing = await app.inject({ method: 'GET', url: '/nothing?token=canary-3' });
  t.equal(missing.statusCode, 404);
  t.notMatch(missing.body, /canary/, 'nor does the 404 answer quote it');
  t.match(log, /"url":"\/healthz"/);
  t.match(log, /"url":"\/v1\/query"/);
  t.match(log, /"url":"\/nothing"/);
  t.notMatch(log, /canary/);
});

// ---- the pool hook's /stats fetches --------------------------------------------------------------

async function recorder(): Promise<{ server: Server; port: number; hits: string[] }> {
  const hits: string[] = [];
  const server = createServer((req, res) => {
    hits.push(req.url ?? '');
    res.setHeader('content-type', 'application/json');
    res.end('{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, hits };
}

t.test('the pool hook asks only its own pods for /stats, at most maxSize of them', async (t) => {
  const app = await buildServer({ plugins: ['hooks'] });
  t.teardown(() => app.close());
  const uid = 'c0ffee00-0000-4000-8000-0000000000aa';
  const parent: pool.PoolObject = {
    apiVersion: 'ducklake.featherman.dev/v1alpha1',
    kind: 'DuckLakePool',
    metadata: { name: 'default-pool', namespace: 'analytics', uid, generation: 1 },
    spec: { catalogRef: { name: 'example' }, minSize: 1, maxSize: 2 },
  };
  const readyCatalog = { ...observed(catalogObject()), status: { phase: 'Ready' } };
  const owner = (o: Partial<{ uid: string; controller: boolean; kind: string }> = {}) => [
    {
      apiVersion: 'ducklake.featherman.dev/v1alpha1',
      kind: 'DuckLakePool',
      name: 'default-pool',
      uid,
      controller: true,
      blockOwnerDeletion: true,
      ...o,
    },
  ];
  const labels = pool.workerLabels(parent);
  // Each pod on its own recording server, so a hit says which pod was asked.
  const cases: [string, Record<string, string>, unknown[] | undefined][] = [
    ['default-pool-a', labels, owner()],
    ['default-pool-b', labels, owner()],
    ['default-pool-c', labels, owner()], // a third owned pod: above maxSize 2
    ['other-labels', { ...labels, 'ducklake.featherman.dev/pool': 'other-pool' }, owner()],
    ['no-labels', {}, owner()],
    ['no-owner', labels, undefined],
    ['other-owner', labels, owner({ uid: 'c0ffee00-0000-4000-8000-0000000000bb' })],
    ['not-controller', labels, owner({ controller: false })],
    ['owner-of-other-kind', labels, owner({ kind: 'DuckLakeCatalog' })],
  ];
  const servers = await Promise.all(cases.map(() => recorder()));
  t.teardown(() => {
    for (const s of servers) s.server.close();
  });
  const pods: KubeObject[] = cases.map(([name, podLabels, ownerReferences], i) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: 'analytics',
      labels: podLabels,
      creationTimestamp: '2026-11-24T11:00:00Z',
      annotations: { [pool.STATS_PORT_ANNOTATION]: String(servers[i]!.port) },
      ...(ownerReferences ? { ownerReferences } : {}),
    },
    spec: { containers: [{ name: 'worker', image: settingsFromEnv(process.env).image }] },
    status: { phase: 'Running', podIP: '127.0.0.1', conditions: [{ type: 'Ready', status: 'True' }] },
  }));
  const body = syncRequest(
    parent,
    pods,
    [readyCatalog],
    ['Pod.v1', 'Service.v1', 'PodDisruptionBudget.policy/v1', 'NetworkPolicy.networking.k8s.io/v1'],
  );
  for (const hook of ['sync', 'finalize']) {
    for (const s of servers) s.hits.length = 0;
    const res = await app.inject({ method: 'POST', url: `/hooks/ducklakepools/${hook}`, payload: body as object });
    t.equal(res.statusCode, 200, `${hook}: ${res.body.slice(0, 300)}`);
    const asked = cases
      .map(([name], i) => [name, servers[i]!.hits.length] as const)
      .filter(([, n]) => n > 0)
      .map(([name]) => name);
    t.same(asked, ['default-pool-a', 'default-pool-b'], `${hook}: only the pool's own pods, at most maxSize (2) of them`);
    t.same(servers[0]!.hits, ['/stats'], 'and only GET /stats');
  }
});

t.test('a pool parent without a uid asks nobody', async (t) => {
  const app = await buildServer({ plugins: ['hooks'] });
  t.teardown(() => app.close());
  const s = await recorder();
  t.teardown(() => s.server.close());
  const parent: pool.PoolObject = {
    apiVersion: 'ducklake.featherman.dev/v1alpha1',
    kind: 'DuckLakePool',
    metadata: { name: 'p', namespace: 'analytics', generation: 1 },
    spec: { catalogRef: { name: 'example' } },
  };
  const pod: KubeObject = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: 'p-x',
      namespace: 'analytics',
      labels: pool.workerLabels(parent),
      annotations: { [pool.STATS_PORT_ANNOTATION]: String(s.port) },
      ownerReferences: [{ kind: 'DuckLakePool', uid: '', controller: true }],
    },
    status: { phase: 'Running', podIP: '127.0.0.1' },
  };
  const res = await app.inject({
    method: 'POST',
    url: '/hooks/ducklakepools/sync',
    payload: syncRequest(parent, [pod], [{ ...observed(catalogObject()), status: { phase: 'Ready' } }], ['Pod.v1']) as object,
  });
  t.equal(res.statusCode, 200, res.body.slice(0, 300));
  t.same(s.hits, []);
});

t.test('a stats fetch follows no redirect and reads no more than a stats answer', async (t) => {
  const target = await recorder();
  t.teardown(() => target.server.close());
  const stats = {
    pod: 'w',
    ready: true,
    state: 'idle',
    activeQueries: 0,
    queriesServed: 1,
    startedAt: '2026-11-30T12:00:00Z',
    utilization: 0,
  };
  const answers: Record<string, (res: import('node:http').ServerResponse) => void> = {
    '/redirect': (res) => {
      res.statusCode = 302;
      res.setHeader('location', `http://127.0.0.1:${target.port}/elsewhere`);
      res.end();
    },
    '/huge': (res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ ...stats, padding: 'x'.repeat(1024 * 1024) }));
    },
    '/stats': (res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(stats));
    },
  };
  const server = createServer((req, res) => answers[req.url ?? '']!(res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  t.equal(await fetchWorkerStats(`${base}/redirect`, 2000), undefined, 'a redirect is no answer');
  t.same(target.hits, [], 'and is not followed');
  t.equal(await fetchWorkerStats(`${base}/huge`, 2000), undefined, 'a 1 MiB answer is no answer');
  t.same(await fetchWorkerStats(`${base}/stats`, 2000), stats, 'a stats answer is read');
});
