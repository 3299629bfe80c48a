// Structure limits checked before anything walks a value recursively (schema checks, JSON.stringify,
// the hooks): how deep it nests, and no keys that would reach a prototype. The walk itself keeps its
// own stack, so a value nested 100,000 deep costs a loop, not the call stack.
import { keyPath } from './schema-validator.js';
import type { FieldProblem } from './table.js';

/** How deep a request body may nest. Kubernetes objects (managedFields included) stay well under it. */
export const MAX_BODY_DEPTH = 100;
/** How deep a spec may nest: every kind's schema is a few levels deep, so anything deeper is invalid. */
export const MAX_SPEC_DEPTH = 32;

interface Frame {
  value: object;
  depth: number;
  parent?: Frame;
  key?: string | number;
}

/** Path segments shown before "…": enough to name the field, short enough for a message. */
const SHOWN_SEGMENTS = 10;

function pathOf(frame: Frame | undefined, root: string, extra?: string): string {
  const keys: (string | number)[] = [];
  for (let f = frame; f && f.key !== undefined; f = f.parent) keys.push(f.key);
  keys.reverse();
  if (extra !== undefined) keys.push(extra);
  let out = root;
  for (const key of keys.slice(0, SHOWN_SEGMENTS)) out = typeof key === 'number' ? `${out}[${key}]` : keyPath(out, key);
  if (keys.length > SHOWN_SEGMENTS) out += '…';
  return out || '(root)';
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The first structure problem in `value`, or undefined: nesting deeper than `maxDepth` containers,
 * or a `__proto__` key, or a `constructor` key holding a `prototype` (whatever escape spelled them
 * in the JSON text: the check is on the parsed keys). `root` prefixes the field path.
 */
export function structureProblem(value: unknown, maxDepth: number, root = ''): FieldProblem | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const stack: Frame[] = [{ value, depth: 1 }];
  while (stack.length > 0) {
    const frame = stack.pop()!;
    if (frame.depth > maxDepth) {
      return { field: pathOf(frame, root), message: `is nested more than ${maxDepth} levels deep (the limit is ${maxDepth})` };
    }
    const v = frame.value;
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) {
        const item: unknown = v[i];
        if (typeof item === 'object' && item !== null) stack.push({ value: item, depth: frame.depth + 1, parent: frame, key: i });
      }
      continue;
    }
    for (const key of Object.keys(v)) {
      const item: unknown = (v as Record<string, unknown>)[key];
      if (key === '__proto__' || (key === 'constructor' && isPlainObject(item) && Object.hasOwn(item, 'prototype'))) {
        return { field: pathOf(frame, root, key), message: 'must not be a __proto__ or constructor.prototype key' };
      }
      if (typeof item === 'object' && item !== null) stack.push({ value: item, depth: frame.depth + 1, parent: frame, key });
    }
  }
  return undefined;
}
