// Ajv validators compiled from the CRD schemas in lib/api/schema.ts, with errors turned into
// FieldProblems that name the field the way kubectl does: spec.columns[0].type.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { KIND_INFO, KINDS, PATTERN_MESSAGES, objectSchema, type Kind, type Schema } from './schema.js';
import type { FieldProblem } from './table.js';

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

function newAjv(): Ajv {
  const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false, strictRequired: false, validateFormats: true });
  ajv.addVocabulary([
    'x-kubernetes-preserve-unknown-fields',
    'x-kubernetes-int-or-string',
    'x-kubernetes-list-type',
    'x-kubernetes-validations',
  ]);
  ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isSafeInteger(n) });
  ajv.addFormat('date-time', { type: 'string', validate: (s: string) => RFC3339.test(s) && !Number.isNaN(Date.parse(s)) });
  // The API server refuses two list-map entries with the same keys; so do we.
  ajv.addKeyword({
    keyword: 'x-kubernetes-list-map-keys',
    type: 'array',
    schemaType: 'array',
    errors: true,
    validate: function uniqueKeys(keys: string[], data: unknown[]): boolean {
      const seen = new Set<string>();
      for (let i = 0; i < data.length; i++) {
        const item = data[i];
        if (!item || typeof item !== 'object') continue;
        const id = JSON.stringify(keys.map((k) => (item as Record<string, unknown>)[k]));
        if (seen.has(id)) {
          (uniqueKeys as unknown as { errors: Partial<ErrorObject>[] }).errors = [
            {
              keyword: 'x-kubernetes-list-map-keys',
              message: `duplicate entry with ${keys.map((k) => `${k}=${JSON.stringify((item as Record<string, unknown>)[k])}`).join(', ')}`,
              params: { index: i },
            },
          ];
          return false;
        }
        seen.add(id);
      }
      return true;
    },
  });
  return ajv;
}

/**
 * The schema as a strict validator sees it: objects with declared properties reject unknown
 * fields. The API server prunes those instead (and `kubectl apply` refuses them client-side);
 * for admission and for checking our own examples, an unknown field is almost always a typo.
 */
export function strictSchema(schema: Schema): Schema {
  const copy: Schema = { ...schema };
  if (copy.properties) {
    copy.properties = Object.fromEntries(Object.entries(copy.properties).map(([k, v]) => [k, strictSchema(v)]));
    if (copy.additionalProperties === undefined && !copy['x-kubernetes-preserve-unknown-fields']) copy.additionalProperties = false;
  }
  if (copy.items) copy.items = strictSchema(copy.items);
  if (copy.additionalProperties && typeof copy.additionalProperties === 'object')
    copy.additionalProperties = strictSchema(copy.additionalProperties);
  return copy;
}

const ajv = newAjv();
const cache = new Map<string, ValidateFunction>();

function compiled(key: string, schema: () => Schema): ValidateFunction {
  let v = cache.get(key);
  if (!v) {
    v = ajv.compile(schema() as object);
    cache.set(key, v);
  }
  return v;
}

/** The spec of an object, checked against its kind's schema, unknown fields refused. */
export function specSchemaProblems(kind: Kind, spec: unknown): FieldProblem[] {
  const validate = compiled(`spec:${kind}`, () => ({
    type: 'object',
    properties: { spec: strictSchema(objectSchema(kind).properties!.spec!) },
    required: ['spec'],
  }));
  return validate({ spec }) ? [] : toProblems(validate.errors ?? [], { spec });
}

/** A whole object against the CRD's openAPIV3Schema (status included), as `kubectl apply --validate=strict` would. */
export function objectSchemaProblems(kind: Kind, object: unknown, opts: { strict?: boolean } = {}): FieldProblem[] {
  const strict = opts.strict ?? true;
  const validate = compiled(`object:${kind}:${strict}`, () => (strict ? strictSchema(objectSchema(kind)) : objectSchema(kind)));
  return validate(object) ? [] : toProblems(validate.errors ?? [], object);
}

/**
 * A status as our hooks write it, every field declared: the CRD preserves unknown status fields
 * (a newer hook may write one before its CRD is applied), so this is how an undeclared one is caught.
 */
export function statusSchemaProblems(kind: Kind, status: unknown): FieldProblem[] {
  const validate = compiled(`status:${kind}`, () => {
    const { 'x-kubernetes-preserve-unknown-fields': _preserved, ...declared } = KIND_INFO[kind].status;
    return { type: 'object', properties: { status: strictSchema(declared) }, required: ['status'] };
  });
  return validate({ status }) ? [] : toProblems(validate.errors ?? [], { status });
}

export function precompile(): void {
  for (const kind of KINDS) specSchemaProblems(kind, {});
}

/** `parent.key`, or `parent["odd/key"]` for keys that are not plain names (label keys, resource names with a domain). */
export function keyPath(parent: string, key: string): string {
  if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(key)) return parent ? `${parent}.${key}` : key;
  return `${parent}[${JSON.stringify(key)}]`;
}

/** "/spec/columns/0/name" → "spec.columns[0].name"; odd keys are bracketed: nodeSelector["kubernetes.io/os"]. */
export function fieldPath(pointer: string, root: unknown): string {
  if (pointer === '') return '(root)';
  let out = '';
  let node: unknown = root;
  for (const raw of pointer.slice(1).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    out = Array.isArray(node) ? `${out}[${key}]` : keyPath(out, key);
    node = node && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined;
  }
  return out;
}

function valueAt(pointer: string, root: unknown): unknown {
  let node = root;
  if (pointer === '') return node;
  for (const raw of pointer.slice(1).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    node = node && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined;
  }
  return node;
}

function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

const TYPE_NAMES: Record<string, string> = {
  object: 'an object',
  array: 'a list',
  string: 'a string',
  integer: 'a whole number',
  number: 'a number',
  boolean: 'true or false',
};

function toProblems(errors: ErrorObject[], root: unknown): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const anyOfPaths = new Set(errors.filter((e) => e.keyword === 'anyOf').map((e) => e.instancePath));
  for (const e of errors) {
    const field = fieldPath(e.instancePath, root);
    const value = valueAt(e.instancePath, root);
    const p = e.params as Record<string, unknown>;
    const join = (name: string) => keyPath(field === '(root)' ? '' : field, name);
    switch (e.keyword) {
      case 'required':
        problems.push({ field: join(String(p.missingProperty)), message: 'is required' });
        break;
      case 'additionalProperties':
        problems.push({
          field: join(String(p.additionalProperty)),
          message: 'is not a field of this kind (check the spelling and the indentation)',
        });
        break;
      case 'type':
        if (anyOfPaths.has(e.instancePath)) break; // reported once, below
        problems.push({ field, message: `must be ${TYPE_NAMES[String(p.type)] ?? p.type}, got ${shown(value)}` });
        break;
      case 'anyOf':
        problems.push({ field, message: `must be a quantity such as 2Gi or 500m, got ${shown(value)}` });
        break;
      case 'enum':
        problems.push({
          field,
          message: `must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}, got ${shown(value)}`,
        });
        break;
      case 'pattern': {
        const msg = PATTERN_MESSAGES[String(p.pattern)] ?? `must match ${p.pattern}`;
        problems.push({ field, message: `${msg}, got ${shown(value)}` });
        break;
      }
      case 'minimum':
        problems.push({ field, message: `must be at least ${p.limit}, got ${shown(value)}` });
        break;
      case 'maximum':
        problems.push({ field, message: `must be at most ${p.limit}, got ${shown(value)}` });
        break;
      case 'minLength':
        problems.push({ field, message: Number(p.limit) === 1 ? 'must not be empty' : `must be at least ${p.limit} characters` });
        break;
      case 'maxLength':
        problems.push({ field, message: `must be at most ${p.limit} characters` });
        break;
      case 'minItems':
        problems.push({ field, message: `must have at least ${p.limit} item${p.limit === 1 ? '' : 's'}` });
        break;
      case 'maxItems':
        problems.push({ field, message: `must have at most ${p.limit} items` });
        break;
      case 'maxProperties':
        problems.push({ field, message: `must have at most ${p.limit} entries` });
        break;
      case 'format':
        problems.push({
          field,
          message: p.format === 'date-time' ? 'must be an RFC 3339 time' : `must be a ${p.format} number, got ${shown(value)}`,
        });
        break;
      case 'x-kubernetes-list-map-keys':
        problems.push({ field: `${field}[${p.index}]`, message: e.message ?? 'duplicate entry' });
        break;
      default:
        problems.push({ field, message: e.message ?? 'is invalid' });
    }
  }
  return problems;
}
