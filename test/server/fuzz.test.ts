// A bounded fuzz run: 10,000+ random mutations of valid objects (and of the review envelope),
// sent to both webhooks through fastify.inject. No 500, no crash, and every answer is a
// well-formed review: the uid echoed, denials with a 422 and the fields, patches that apply and
// are idempotent. FUZZ_SEED reproduces a run; FUZZ_CASES changes its size.
import t from 'tap';
import { mutateReview } from '../../lib/api/admission.js';
import { buildServer } from '../../lib/server/server.js';
import { applyPatch, clone, decodePatch, exampleFiles, readmeFixture, review, yamlObjects, type Obj } from '../helpers/admission.js';
import { prng } from '../helpers/fuzz.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20261124);
const CASES = Number(process.env.FUZZ_CASES ?? 10_000);

const random = prng(SEED);
const int = (n: number) => Math.floor(random() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;

const seeds: Obj[] = [
  ...exampleFiles()
    .flatMap((f) => yamlObjects(f))
    .filter((o) => String(o.apiVersion).startsWith('ducklake.')),
  readmeFixture('catalog'),
  readmeFixture('pool'),
  readmeFixture('table'),
];
t.ok(seeds.length >= 7, 'seed objects from examples/ and the README');

const STRINGS = [
  '',
  ' ',
  'a',
  'ZSTD',
  'day(created_at)',
  'year(x)',
  'INTEGER',
  'DECIMAL(38,38)',
  'STRUCT(a INT, "b c" VARCHAR[])',
  'MAP(VARCHAR, INT)[]',
  'LIST(',
  '0 2 * * *',
  '@daily',
  '* * * * * * *',
  '1Gi',
  '-1Gi',
  '1e400',
  '0.8',
  '300s',
  '0s',
  '99999999999999999999h',
  'http://x:0',
  'https://[::1]:9000',
  '../..',
  '/',
  'a/b//c',
  'postgres',
  'duckdb',
  'Retain',
  'Delete',
  '__proto__',
  'constructor',
  'toString',
  '\u0000',
  '\ud83e\udd86',
  'x'.repeat(300),
  'é'.repeat(70),
  '"quoted"',
  "it's",
  '${x}',
  '%s%n',
  'NaN',
  'Infinity',
  'true',
  '[]',
  '{}',
  '~1',
  'a~0b',
  'kubernetes.io/os',
  'Exists',
  'NoExecute',
];
const NUMBERS = [0, -1, 1, 0.5, 1.5, 2 ** 31, -(2 ** 31) - 1, 2 ** 53 + 1, 1e308, -1e-308, 3.14159, 1000, 1001, 100000];

function randomValue(depth = 0): unknown {
  switch (int(depth > 2 ? 5 : 8)) {
    case 0:
      return null;
    case 1:
      return pick(NUMBERS);
    case 2:
    case 3:
      return pick(STRINGS);
    case 4:
      return random() < 0.5;
    case 5:
      return [];
    case 6:
      return Array.from({ length: int(4) }, () => randomValue(depth + 1));
    default:
      return Object.fromEntries(
        Array.from({ length: int(4) }, () => [
          pick(['name', 'type', 'schedule', 'x', '__proto__', 'spec', 'enabled']),
          randomValue(depth + 1),
        ]),
      );
  }
}

function mutateString(s: string): string {
  const i = int(s.length + 1);
  switch (int(4)) {
    case 0:
      return s.slice(0, i) + pick(['(', ')', ',', ' ', '"', '*', '/', '-', '.', ':', 'x', '9', '\n']) + s.slice(i);
    case 1:
      return s.slice(0, i) + s.slice(i + 1);
    case 2:
      return s.toLowerCase() === s ? s.toUpperCase() : s.toLowerCase();
    default:
      return s + s;
  }
}

/** Every (container, key) in the tree, so a mutation can land anywhere. */
function slots(node: unknown, out: [Obj | unknown[], string | number][] = []): [Obj | unknown[], string | number][] {
  if (Array.isArray(node))
    node.forEach((v, i) => {
      out.push([node, i]);
      slots(v, out);
    });
  else if (node && typeof node === 'object')
    for (const [k, v] of Object.entries(node)) {
      out.push([node as Obj, k]);
      slots(v, out);
    }
  return out;
}

function mutate(object: Obj): Obj {
  const o = clone(object);
  const n = 1 + int(4);
  for (let i = 0; i < n; i++) {
    const all = slots(o.spec ?? o).filter(() => true);
    if (all.length === 0) break;
    const [container, key] = pick(all);
    const c = container as Record<string | number, unknown>;
    const value = c[key];
    switch (int(7)) {
      case 0:
        if (Array.isArray(container)) container.splice(key as number, 1);
        else delete c[key];
        break;
      case 1:
        c[key] = randomValue();
        break;
      case 2:
        if (typeof value === 'string') c[key] = mutateString(value);
        else c[key] = randomValue();
        break;
      case 3:
        if (typeof value === 'number') c[key] = pick([value + 1, value - 1, -value, value * 1000, value + 0.5]);
        else c[key] = pick(NUMBERS);
        break;
      case 4:
        if (Array.isArray(value) && value.length) value.push(clone(value[int(value.length)]));
        else c[key] = [value];
        break;
      case 5:
        if (value && typeof value === 'object' && !Array.isArray(value))
          (value as Obj)[pick(['extra', 'nullable', 'prefix', 'schedule', 'kind'])] = randomValue();
        else c[key] = { value };
        break;
      default:
        c[key] = typeof value === 'string' ? pick(STRINGS) : String(value);
    }
  }
  return o;
}

function envelope(body: Obj): unknown {
  switch (int(8)) {
    case 0:
      return { ...body, apiVersion: pick(['admission.k8s.io/v1beta1', '', null, 1]) };
    case 1: {
      const r = clone(body);
      r.request.uid = pick([null, '', 7, {}, 'ok-uid']);
      return r;
    }
    case 2: {
      const r = clone(body);
      r.request.operation = pick(['PATCH', null, 'create', 'CONNECT']);
      return r;
    }
    case 3: {
      const r = clone(body);
      r.request.kind = pick([null, {}, { kind: 5 }, { group: 'other', kind: 'DuckLakeTable' }, { kind: 'Pod' }]);
      return r;
    }
    case 4: {
      const r = clone(body);
      r.request.object = pick([null, [], 'x', 5, { spec: null }, {}]);
      return r;
    }
    case 5:
      return JSON.stringify(body).slice(0, int(200));
    case 6:
      return pick([[], null, 'null', '"string"', 42, '{}']);
    default: {
      const r = clone(body);
      delete r.request;
      return r;
    }
  }
}

const app = await buildServer({ plugins: ['admission'] });
t.teardown(() => app.close());

t.test(`fuzz: ${CASES} cases, seed ${SEED}`, async (t) => {
  const started = Date.now();
  const counts = { allowed: 0, denied: 0, malformed: 0, patched: 0 };
  const failures: string[] = [];
  const fail = (why: string, body: unknown) => {
    if (failures.length < 5) failures.push(`${why}\n${JSON.stringify(body).slice(0, 2000)}`);
  };
  for (let i = 0; i < CASES; i++) {
    const base = pick(seeds);
    const object = mutate(base);
    const roll = random();
    const operation = roll < 0.65 ? 'CREATE' : roll < 0.92 ? 'UPDATE' : roll < 0.97 ? 'DELETE' : 'CONNECT';
    const old = operation === 'UPDATE' ? (random() < 0.5 ? clone(base) : mutate(base)) : undefined;
    let body: unknown = review(operation, operation === 'DELETE' ? undefined : object, operation === 'DELETE' ? object : old, `fuzz-${i}`);
    const broken = random() < 0.1;
    if (broken) body = envelope(body as Obj);
    const payload = typeof body === 'string' ? body : JSON.stringify(body);

    for (const path of ['/admission/validate', '/admission/mutate']) {
      const res = await app.inject({ method: 'POST', url: path, headers: { 'content-type': 'application/json' }, payload });
      if (res.statusCode >= 500) {
        fail(`${path} answered ${res.statusCode}: ${res.body}`, body);
        continue;
      }
      if (res.statusCode === 400) {
        counts.malformed++;
        const prototypeKey = /"__proto__"/.test(payload) && /__proto__/.test(res.json().message);
        if (!broken && !prototypeKey) fail(`${path} refused a well-formed review: ${res.body}`, body);
        if (!res.json().message) fail(`${path} 400 without a message`, body);
        continue;
      }
      if (res.statusCode !== 200) {
        fail(`${path} answered ${res.statusCode}: ${res.body}`, body);
        continue;
      }
      const r = res.json().response;
      const uid = (body as Obj).request.uid;
      if (r.uid !== uid) fail(`${path} uid ${r.uid} is not ${uid}`, body);
      if (typeof r.allowed !== 'boolean') fail(`${path} allowed is not a boolean`, body);
      if (path.endsWith('validate')) {
        if (r.allowed) counts.allowed++;
        else {
          counts.denied++;
          if (r.status?.code !== 422 || !r.status.message || !r.status.details?.causes?.length)
            fail(`denial without a 422, a message and causes: ${res.body}`, body);
          for (const c of r.status?.details?.causes ?? [])
            if (!/^(spec|\(root\))/.test(c.field)) fail(`cause does not name a spec field: ${c.field}`, body);
        }
      } else {
        if (!r.allowed) fail('the mutating webhook denied', body);
        if (r.patch) {
          counts.patched++;
          const target = (body as Obj).request.object;
          try {
            const patched = applyPatch(target, decodePatch(r.patch));
            const again = mutateReview({ ...(body as Obj), request: { ...(body as Obj).request, object: patched } }).response;
            if (again.patch) fail(`defaulting is not idempotent: ${JSON.stringify(decodePatch(again.patch))}`, body);
          } catch (err) {
            fail(`the patch does not apply: ${(err as Error).message}`, body);
          }
        }
      }
    }
  }
  t.same(failures, [], 'no 500s, no malformed answers');
  t.ok(
    counts.allowed > 100 && counts.denied > 1000 && counts.malformed > 100 && counts.patched > 100,
    `a mix of outcomes: ${JSON.stringify(counts)}`,
  );
  // About 10 s on an idle machine; the bound only catches a pathological slowdown, not a busy CI host.
  t.ok(Date.now() - started < 120_000, `finished in ${Date.now() - started} ms`);
});
