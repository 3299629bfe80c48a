// Building AdmissionReviews and reading their answers, for the admission tests.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { packageRoot } from '../../lib/lake/config.js';
import type { PatchOp } from '../../lib/api/defaults.js';

export const ROOT = packageRoot();
export type Obj = Record<string, any>;

export function yamlObjects(path: string): Obj[] {
  return parseAllDocuments(readFileSync(path, 'utf8'))
    .map((d) => d.toJS() as Obj)
    .filter(Boolean);
}

export function exampleFiles(): string[] {
  return readdirSync(join(ROOT, 'examples'))
    .filter((f) => /\.ya?ml$/.test(f))
    .map((f) => join(ROOT, 'examples', f));
}

export const readmeFixture = (name: 'catalog' | 'table' | 'pool'): Obj =>
  yamlObjects(join(ROOT, 'test', 'fixtures', 'original-readme', `${name}.yaml`))[0]!;

let counter = 0;

export function review(
  operation: 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT',
  object: Obj | undefined,
  oldObject?: Obj,
  uid = `uid-${++counter}`,
): Obj {
  const source = object ?? oldObject ?? {};
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: 'ducklake.featherman.dev', version: 'v1alpha1', kind: source.kind },
      resource: { group: 'ducklake.featherman.dev', version: 'v1alpha1', resource: `${String(source.kind).toLowerCase()}s` },
      name: source.metadata?.name,
      namespace: source.metadata?.namespace ?? 'default',
      operation,
      userInfo: { username: 'tester' },
      ...(object !== undefined ? { object } : {}),
      ...(oldObject !== undefined ? { oldObject } : {}),
      dryRun: false,
    },
  };
}

export function decodePatch(patch: string | undefined): PatchOp[] {
  return patch ? JSON.parse(Buffer.from(patch, 'base64').toString('utf8')) : [];
}

/** Applies add/replace/remove ops (RFC 6902 semantics for objects and array indexes). */
export function applyPatch(doc: Obj, ops: PatchOp[]): Obj {
  const out = structuredClone(doc);
  for (const op of ops) {
    const keys = op.path
      .split('/')
      .slice(1)
      .map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = keys.pop()!;
    let node: any = out;
    for (const k of keys) {
      if (node[k] === undefined) throw new Error(`patch ${op.op} ${op.path}: parent ${k} does not exist`);
      node = node[k];
    }
    if (op.op === 'remove') delete node[last];
    else if (op.op === 'replace' && !(last in node)) throw new Error(`patch replace ${op.path}: no value to replace`);
    else node[last] = structuredClone(op.value);
  }
  return out;
}

export function clone<T>(v: T): T {
  return structuredClone(v);
}
