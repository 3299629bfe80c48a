// Every object in examples/ passes the CRD schema and both webhooks; the three objects of the
// original Featherman README: the catalog and the pool are accepted, the table is denied because
// it partitions by a column it does not have.
import t, { type Test } from 'tap';
import { basename } from 'node:path';
import { mutateReview, validateReview } from '../../lib/api/admission.js';
import { isKind } from '../../lib/api/schema.js';
import { objectSchemaProblems } from '../../lib/api/schema-validator.js';
import { applyPatch, decodePatch, exampleFiles, readmeFixture, review, yamlObjects, type Obj } from '../helpers/admission.js';

/** What the API server would store: the object after the mutating webhook's patch. */
function admitted(t: Test, object: Obj): Obj {
  const mutated = mutateReview(review('CREATE', object)).response;
  t.equal(mutated.allowed, true, 'the mutating webhook allows it');
  return applyPatch(object, decodePatch(mutated.patch));
}

const examples = exampleFiles().flatMap((file) => yamlObjects(file).map((object) => ({ file: basename(file), object })));
t.ok(examples.filter((e) => isKind(e.object.kind)).length >= 4, 'examples/ has a catalog, a Postgres catalog, a table and a pool');

for (const { file, object } of examples) {
  if (!isKind(object.kind)) {
    t.equal(object.kind, 'Secret', `${file}: the only other kind is the credentials Secret`);
    continue;
  }
  t.test(`${file}: ${object.kind} ${object.metadata.name}`, async (t) => {
    t.same(objectSchemaProblems(object.kind, object), [], 'matches the CRD schema, no unknown fields');
    const stored = admitted(t, object);
    t.same(objectSchemaProblems(object.kind, stored), [], 'still matches it after defaulting');
    const verdict = validateReview(review('CREATE', stored)).response;
    t.same(
      verdict,
      { uid: verdict.uid, allowed: true, ...(verdict.warnings ? { warnings: verdict.warnings } : {}) },
      'the validating webhook allows it',
    );
    const update = validateReview(review('UPDATE', stored, stored)).response;
    t.equal(update.allowed, true, 're-applying it unchanged is allowed');
  });
}

t.test('original README catalog is accepted', async (t) => {
  const catalog = readmeFixture('catalog');
  t.equal(catalog.spec.objectStore.endpoint, 's3.amazonaws.com', 'the fixture is the README text (a bare host endpoint)');
  t.same(objectSchemaProblems('DuckLakeCatalog', catalog), []);
  t.equal(validateReview(review('CREATE', catalog)).response.allowed, true);
  t.equal(validateReview(review('CREATE', admitted(t, catalog))).response.allowed, true);
});

t.test('original README pool is accepted', async (t) => {
  const pool = readmeFixture('pool');
  t.equal(pool.spec.maxIdleTime, '300s', 'the fixture is the README text');
  t.same(objectSchemaProblems('DuckLakePool', pool), []);
  t.equal(validateReview(review('CREATE', pool)).response.allowed, true);
  t.equal(validateReview(review('CREATE', admitted(t, pool))).response.allowed, true);
});

t.test('original README table is denied: created_at is not one of its columns', async (t) => {
  const table = readmeFixture('table');
  t.same(table.spec.format.partitioning, ['created_at'], 'the fixture is the README text');
  t.same(objectSchemaProblems('DuckLakeTable', table), [], 'the schema alone cannot see it');
  for (const object of [table, admitted(t, table)]) {
    const response = validateReview(review('CREATE', object)).response;
    t.equal(response.allowed, false);
    t.equal(response.status?.code, 422);
    t.equal(
      response.status?.message,
      'DuckLakeTable "users" is invalid: spec.format.partitioning[0]: partition column "created_at" is not one of the table\'s columns',
    );
    t.same(response.status?.details?.causes, [
      {
        field: 'spec.format.partitioning[0]',
        message: 'partition column "created_at" is not one of the table\'s columns',
        reason: 'FieldValueInvalid',
      },
    ]);
  }
});
