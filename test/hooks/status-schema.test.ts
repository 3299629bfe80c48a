// Every status the hooks write, checked against its CRD's status schema with unknown fields refused.
// The CRDs preserve unknown status fields (a newer hook may write one before its CRD is updated),
// so the API server would keep an undeclared field silently: `kubectl explain` would not know it,
// and the printer columns and the metrics could not rely on it.
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { statusSchemaProblems } from '../../lib/api/schema-validator.js';
import type { Kind } from '../../lib/api/schema.js';
import { packageRoot } from '../../lib/lake/config.js';

const KIND_BY_PREFIX: Record<string, Kind> = {
  catalog: 'DuckLakeCatalog',
  table: 'DuckLakeTable',
  pool: 'DuckLakePool',
  backup: 'DuckLakeBackup',
};
const dir = join(packageRoot(), 'test', 'golden');
const files = readdirSync(dir).filter((f) => f.endsWith('.json'));

t.test("every golden hook response's status is declared by its CRD", async (t) => {
  const kinds = new Set<Kind>();
  for (const f of files) {
    const kind = KIND_BY_PREFIX[f.split('-')[0]!];
    t.ok(kind, `${f}: its name says its kind`);
    if (!kind) continue;
    kinds.add(kind);
    const { status } = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { status: unknown };
    t.same(statusSchemaProblems(kind, status), [], `${f}: status matches the ${kind} status schema exactly`);
  }
  t.same([...kinds].sort(), Object.values(KIND_BY_PREFIX).sort(), 'all four kinds are covered');
});

t.test('an undeclared status field is caught, naming it', async (t) => {
  const problems = statusSchemaProblems('DuckLakePool', { phase: 'Ready', podCounter: 3 });
  t.equal(problems.length, 1);
  t.match(problems[0], { field: 'status.podCounter', message: /is not a field/ });
});
