// The admission routes over HTTP (fastify.inject): AdmissionReview responses checked field by
// field for CREATE, UPDATE and DELETE, and malformed requests answered 400, never 500.
import t from 'tap';
import { join } from 'node:path';
import { buildServer } from '../../lib/server/server.js';
import { applyPatch, clone, decodePatch, readmeFixture, review, ROOT, yamlObjects, type Obj } from '../helpers/admission.js';

const app = await buildServer({ plugins: ['health', 'admission'] });
t.teardown(() => app.close());

async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await app.inject({
    method: 'POST',
    url: path,
    headers: { 'content-type': 'application/json', ...headers },
    payload: typeof body === 'string' ? body : JSON.stringify(body),
  });
  let json: Obj | undefined;
  try {
    json = res.json();
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, json, headers: res.headers };
}

t.test('mutate CREATE: defaults as a base64 JSONPatch', async (t) => {
  const table = readmeFixture('table');
  const body = review('CREATE', table, undefined, 'a1b2c3');
  const res = await post('/admission/mutate', body);
  t.equal(res.status, 200);
  t.match(res.headers['content-type'], /application\/json/);
  t.same(Object.keys(res.json!).sort(), ['apiVersion', 'kind', 'response']);
  t.equal(res.json!.apiVersion, 'admission.k8s.io/v1');
  t.equal(res.json!.kind, 'AdmissionReview');
  const r = res.json!.response;
  t.equal(r.uid, 'a1b2c3', 'uid echoed');
  t.equal(r.allowed, true);
  t.equal(r.status, undefined, 'no status when allowed');
  t.equal(r.patchType, 'JSONPatch');
  t.same(decodePatch(r.patch), [
    { op: 'add', path: '/spec/columns/0/nullable', value: true },
    { op: 'add', path: '/spec/columns/1/nullable', value: true },
    { op: 'add', path: '/spec/schema', value: 'main' },
    { op: 'add', path: '/spec/deletionPolicy', value: 'Retain' },
  ]);
  const patched = applyPatch(table, decodePatch(r.patch));
  t.equal(patched.spec.format.compression, 'ZSTD', 'a given value is kept');
});

t.test('mutate CREATE: nested blocks get their defaults, computed defaults included', async (t) => {
  const catalog = readmeFixture('catalog');
  catalog.metadata.namespace = 'analytics';
  const r = (await post('/admission/mutate', review('CREATE', catalog))).json!.response;
  t.same(decodePatch(r.patch), [
    { op: 'add', path: '/spec/objectStore/credentialsSecret/accessKeyField', value: 'access-key' },
    { op: 'add', path: '/spec/objectStore/credentialsSecret/secretKeyField', value: 'secret-key' },
    { op: 'add', path: '/spec/objectStore/prefix', value: 'analytics/example' },
    { op: 'add', path: '/spec/backupPolicy/includeData', value: false },
    { op: 'add', path: '/spec/metadata', value: { type: 'duckdb' } },
    { op: 'add', path: '/spec/encryption', value: { enabled: false } },
    { op: 'add', path: '/spec/inspection', value: { schedule: '*/15 * * * *', enabled: true } },
  ]);
  const pool = readmeFixture('pool');
  const p = (await post('/admission/mutate', review('CREATE', pool))).json!.response;
  t.same(
    decodePatch(p.patch),
    [
      { op: 'add', path: '/spec/maxQueryDuration', value: '60s' },
      { op: 'add', path: '/spec/queue', value: { maxLength: 100, maxWaitTime: '30s' } },
    ],
    'queue defaults apply even though the block was omitted',
  );
  const bare = {
    apiVersion: 'ducklake.featherman.dev/v1alpha1',
    kind: 'DuckLakePool',
    metadata: { name: 'p' },
    spec: { catalogRef: { name: 'c' }, minSize: 0, targetUtilization: '0.5' },
  };
  const b = (await post('/admission/mutate', review('CREATE', bare))).json!.response;
  const patched = applyPatch(bare, decodePatch(b.patch));
  t.equal(patched.spec.minSize, 0, 'an explicit 0 is kept (the Go operator re-defaulted it to 1)');
  t.equal(patched.spec.catalogRef.readOnly, true);
  t.equal(patched.spec.scaleInterval, '30s');
  t.equal(patched.spec.targetUtilization, 0.5, "the original API's string targetUtilization becomes a number");
  t.match(b.warnings, [/targetUtilization: the string "0.5" was converted to the number 0.5/]);
});

t.test('mutate: nothing to add means no patch at all', async (t) => {
  const pool = yamlObjects(join(ROOT, 'examples', 'pool.yaml'))[0]!;
  const r = (await post('/admission/mutate', review('CREATE', pool))).json!.response;
  t.same(r, { uid: r.uid, allowed: true });
});

t.test('mutate UPDATE: defaults again, but nothing derived from the name', async (t) => {
  const old = readmeFixture('catalog');
  const next = clone(old);
  next.spec.backupPolicy = { schedule: '@daily' };
  const r = (await post('/admission/mutate', review('UPDATE', next, old))).json!.response;
  const ops = decodePatch(r.patch);
  t.ok(
    ops.some((o) => o.path === '/spec/backupPolicy/retentionDays' && (o as { value: unknown }).value === 7),
    'retentionDays defaulted',
  );
  t.notOk(
    ops.some((o) => o.path === '/spec/objectStore/prefix'),
    'no prefix invented on UPDATE (it would move the lake)',
  );
});

t.test('validate CREATE allowed: exactly uid and allowed', async (t) => {
  const res = await post('/admission/validate', review('CREATE', readmeFixture('pool'), undefined, 'uid-ok'));
  t.equal(res.status, 200);
  t.same(res.json, { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'uid-ok', allowed: true } });
});

t.test('validate CREATE denied: status field by field', async (t) => {
  const res = await post('/admission/validate', review('CREATE', readmeFixture('table'), undefined, 'uid-deny'));
  t.equal(res.status, 200, 'a denial is a successful review');
  t.same(res.json, {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: {
      uid: 'uid-deny',
      allowed: false,
      status: {
        status: 'Failure',
        code: 422,
        reason: 'Invalid',
        message:
          'DuckLakeTable "users" is invalid: spec.format.partitioning[0]: partition column "created_at" is not one of the table\'s columns',
        details: {
          name: 'users',
          group: 'ducklake.featherman.dev',
          kind: 'ducklaketables',
          causes: [
            {
              field: 'spec.format.partitioning[0]',
              message: 'partition column "created_at" is not one of the table\'s columns',
              reason: 'FieldValueInvalid',
            },
          ],
        },
      },
    },
  });
});

t.test('validate UPDATE: immutable bucket denied, growing the volume allowed', async (t) => {
  const old = readmeFixture('catalog');
  const moved = clone(old);
  moved.spec.objectStore.bucket = 'elsewhere';
  const denied = (await post('/admission/validate', review('UPDATE', moved, old, 'u-up'))).json!.response;
  t.equal(denied.uid, 'u-up');
  t.equal(denied.allowed, false);
  t.equal(denied.status.code, 422);
  t.match(denied.status.message, /spec\.objectStore\.bucket: is immutable \(was "my-data-lake", now "elsewhere"\)/);
  const grown = clone(old);
  grown.spec.size = '50Gi';
  const ok = (await post('/admission/validate', review('UPDATE', grown, old))).json!.response;
  t.same(ok, { uid: ok.uid, allowed: true });
});

t.test('DELETE is always allowed, even for objects that would not validate', async (t) => {
  const broken = readmeFixture('table');
  for (const path of ['/admission/validate', '/admission/mutate']) {
    const res = await post(path, review('DELETE', undefined, broken, 'u-del'));
    t.equal(res.status, 200);
    t.same(res.json!.response, { uid: 'u-del', allowed: true }, `${path}: allowed, no patch`);
  }
});

t.test('a kind the webhook does not own is let through', async (t) => {
  const body = review('CREATE', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' }, data: {} });
  body.request.kind = { group: '', version: 'v1', kind: 'ConfigMap' };
  const res = await post('/admission/validate', body);
  t.same(res.json!.response, { uid: body.request.uid, allowed: true });
});

t.test('malformed requests get 400 with a message, never 500', async (t) => {
  const good = review('CREATE', readmeFixture('catalog'));
  const cases: [string, unknown, RegExp, Record<string, string>?][] = [
    ['not JSON', '{"apiVersion": "admission.k8s.io/v1", ', /the body is not valid JSON/],
    ['empty body', '', /the body is empty/],
    ['a JSON array', '[]', /body must be object|AdmissionReview object/],
    ['JSON null', 'null', /body must be object|AdmissionReview object/],
    [
      'wrong apiVersion',
      { ...good, apiVersion: 'admission.k8s.io/v1beta1' },
      /apiVersion must be admission.k8s.io\/v1, got "admission.k8s.io\/v1beta1"/,
    ],
    ['wrong kind', { ...good, kind: 'Review' }, /kind must be AdmissionReview/],
    ['missing request', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }, /request is missing/],
    ['request without uid', { ...good, request: { ...good.request, uid: undefined } }, /request.uid must be a non-empty string/],
    [
      'unknown operation',
      { ...good, request: { ...good.request, operation: 'PATCH' } },
      /request.operation must be one of CREATE, UPDATE, DELETE, CONNECT/,
    ],
    ['CREATE without object', { ...good, request: { ...good.request, object: undefined } }, /request.object must be an object for CREATE/],
    [
      'UPDATE without oldObject',
      { ...good, request: { ...good.request, operation: 'UPDATE' } },
      /request.oldObject must be an object for UPDATE/,
    ],
    ['request.kind missing', { ...good, request: { ...good.request, kind: undefined } }, /request.kind.kind must be a string/],
    ['prototype poisoning', '{"__proto__": {"polluted": true}, "apiVersion": "admission.k8s.io/v1"}', /must not contain __proto__/],
    ['text/plain, not JSON', 'hello', /the body is not valid JSON/, { 'content-type': 'text/plain' }],
    [
      'constructor.prototype',
      '{"apiVersion": "admission.k8s.io/v1", "a": {"constructor": {"prototype": {}}}}',
      /must not contain __proto__ or constructor.prototype/,
    ],
  ];
  for (const [name, body, message, headers] of cases) {
    for (const path of ['/admission/validate', '/admission/mutate']) {
      const res = await post(path, body, headers);
      t.equal(res.status, 400, `${name} → 400 (${path})`);
      t.equal(res.json?.statusCode, 400, `${name}: JSON error body`);
      t.match(res.json?.message, message, `${name}: says what is wrong`);
    }
  }
  const huge = await post('/admission/validate', JSON.stringify({ ...good, padding: 'x'.repeat(9 * 1024 * 1024) }));
  t.equal(huge.status, 413, 'a body over 8 MiB is refused with 413');
  const get = await app.inject({ method: 'GET', url: '/admission/validate' });
  t.equal(get.statusCode, 404, 'only POST is routed');
});

t.test('health endpoints', async (t) => {
  t.same((await app.inject({ method: 'GET', url: '/healthz' })).json(), { status: 'ok' });
  const ready = await app.inject({ method: 'GET', url: '/readyz' });
  t.equal(ready.statusCode, 200);
  const gated = await buildServer({ plugins: ['health'], readiness: { tls: () => 'HTTPS is not listening yet', lake: () => true } });
  const res = await gated.inject({ method: 'GET', url: '/readyz' });
  t.equal(res.statusCode, 503);
  t.same(res.json(), { status: 'not ready', checks: { tls: 'HTTPS is not listening yet', lake: 'ok' } });
  await gated.close();
});

t.test('buildServer refuses an unknown plugin name', async (t) => {
  await t.rejects(buildServer({ plugins: ['nope'] }), /unknown server plugin "nope"/);
});
