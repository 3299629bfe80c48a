#!/usr/bin/env node
// Import cycles between folders, which `madge --circular` (file to file) does not see: lib/pool
// importing lib/auth while lib/auth imports lib/pool is a cycle even when no file imports itself
// back. Each folder of lib/ (subfolders apart, e.g. lib/lake/commands), each file directly in lib/,
// and hooks/ is one node. Prints every cycle with the imports that make it; exits 1 if any.
import madge from 'madge';

const result = await madge(['lib', 'hooks'], { fileExtensions: ['ts'] });
const files = result.obj();

const node = (file) => {
  const parts = file.split('/');
  if (parts[0] === 'hooks') return 'hooks';
  return parts.length === 2 ? file : parts.slice(0, -1).join('/');
};

const edges = new Map(); // from -> to -> the imports behind the edge
for (const [from, deps] of Object.entries(files)) {
  for (const to of deps) {
    const a = node(from),
      b = node(to);
    if (a === b) continue;
    if (!edges.has(a)) edges.set(a, new Map());
    const out = edges.get(a);
    if (!out.has(b)) out.set(b, []);
    out.get(b).push(`${from} -> ${to}`);
  }
}

// Tarjan's strongly connected components: every component of more than one node is a cycle.
const index = new Map(),
  low = new Map(),
  stack = [],
  onStack = new Set(),
  components = [];
let next = 0;
const visit = (v) => {
  index.set(v, next);
  low.set(v, next);
  next++;
  stack.push(v);
  onStack.add(v);
  for (const w of edges.get(v)?.keys() ?? []) {
    if (!index.has(w)) {
      visit(w);
      low.set(v, Math.min(low.get(v), low.get(w)));
    } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), index.get(w)));
  }
  if (low.get(v) === index.get(v)) {
    const component = [];
    let w;
    do {
      w = stack.pop();
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1) components.push(component.sort());
  }
};
for (const v of [...edges.keys()].sort()) if (!index.has(v)) visit(v);

if (components.length === 0) {
  console.log(`No import cycle between folders (${Object.keys(files).length} files).`);
  process.exit(0);
}
for (const component of components) {
  console.log(`Cycle between ${component.join(', ')}:`);
  for (const a of component) {
    for (const [b, imports] of edges.get(a) ?? []) {
      if (component.includes(b)) console.log(`  ${a} -> ${b}: ${imports.join(', ')}`);
    }
  }
}
process.exit(1);
