// The pieces of "who may query what" that need no cluster: static token entries, the service's
// own parse of a SELECT for the cold path, grants, query ids, and an API server that cannot be
// reached (a real refused connection: 503, never 401). The cluster's side (TokenReview,
// SubjectAccessReview, RBAC) is exercised on a real API server in test/e2e/identities.test.ts.
import t from 'tap';
import { KubeConfig } from '@kubernetes/client-node';
import {
  Authenticator,
  AuthUnavailable,
  kubernetesTokenReviewer,
  parseStaticTokens,
  Unauthenticated,
} from '../../lib/auth/authenticate.js';
import { kubernetesAccessReviewer, kubernetesTableObjects } from '../../lib/auth/authorize.js';
import { selectTables } from '../../lib/auth/parse.js';
import { checkGrant, outsideGrant, ALL_TABLES } from '../../lib/auth/tables.js';
import { SandboxError } from '../../lib/lake/sandbox.js';
import { buildServer } from '../../lib/server/server.js';
import { freePort } from '../helpers/minio.js';

const failure = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );

t.test('static token entries: bare tokens have all access; token=user;group... name an identity', async (t) => {
  const entries = parseStaticTokens('plain, t2=system:serviceaccount:ns:bot;team-a;team-b\nt3=alice');
  t.same(
    entries.map((e) => e.token),
    ['plain', 't2', 't3'],
  );
  t.match(entries[0]!.principal, { user: 'featherman:static', allAccess: true });
  t.same(
    entries[1]!.principal,
    { user: 'system:serviceaccount:ns:bot', groups: ['team-a', 'team-b', 'featherman:static-tokens'] },
    'colons stay in the user name',
  );
  t.same(entries[2]!.principal, { user: 'alice', groups: ['featherman:static-tokens'] });
  t.throws(() => parseStaticTokens('=alice'), /an entry is token, token=user/);
  const auth = new Authenticator({ staticTokens: entries });
  t.equal((await auth.authenticate('Bearer t3')).user, 'alice');
  t.type(await failure(auth.authenticate('Bearer nope')), Unauthenticated);
  t.type(await failure(auth.authenticate(undefined)), Unauthenticated);
  t.type(await failure(auth.authenticate('Basic dDM=')), Unauthenticated);
});

t.test('an API server that cannot be reached: 503 with Retry-After, never 401, and the token is kept nowhere', async (t) => {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${await freePort()}`, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'service-token' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  const reviewer = kubernetesTokenReviewer(kc);
  t.type(await failure(reviewer('some-token', ['featherman'])), AuthUnavailable);
  const lines: string[] = [];
  const app = await buildServer({
    plugins: ['query'],
    apiTokens: [],
    logger: { level: 'info', stream: { write: (l: string) => lines.push(l) } } as never,
    kubernetesAuth: { tokenReviewer: reviewer, accessReviewer: kubernetesAccessReviewer(kc), tableObjects: kubernetesTableObjects(kc) },
  });
  t.teardown(() => app.close());
  const secret = 'a-bearer-token-that-must-not-leak';
  const res = await app.inject({
    method: 'POST',
    url: '/v1/query',
    headers: { authorization: `Bearer ${secret}` },
    payload: { catalog: 'c', sql: 'SELECT 1' },
  });
  t.equal(res.statusCode, 503);
  t.equal(res.headers['retry-after'], '1');
  t.ok(res.headers['x-featherman-query-id'], 'a query id even so');
  t.notMatch(res.body + lines.join(''), secret, 'the token is in neither the answer nor the log');
  // Not cached: the next call asks again (and fails again) rather than remembering a failure as a refusal.
  const again = await app.inject({
    method: 'POST',
    url: '/v1/query',
    headers: { authorization: `Bearer ${secret}` },
    payload: { catalog: 'c', sql: 'SELECT 1' },
  });
  t.equal(again.statusCode, 503);
});

t.test("the cold path's parse: the tables a SELECT names, in order, without its CTEs", async (t) => {
  t.same(await selectTables('WITH x AS (SELECT 1) SELECT * FROM events, x, lake.users, s.t WHERE 1 IN (SELECT 1 FROM z)'), {
    read: [
      { schema: 'main', table: 'events' },
      { schema: 'main', table: 'users' },
      { schema: 's', table: 't' },
      { schema: 'main', table: 'z' },
    ],
    catalog: false,
  });
  t.same(
    await selectTables('SELECT * FROM lake.snapshots()'),
    { read: [], catalog: true },
    "DuckLake's table functions count as the catalog",
  );
  t.same(
    await selectTables('SELECT * FROM "Users"'),
    { read: [{ schema: 'main', table: 'users' }], catalog: false },
    'names fold to lower case, as DuckDB resolves them',
  );
  t.equal(await selectTables('INSERT INTO users VALUES (1)'), undefined, 'a write is known only once bound');
  t.same(await selectTables('SELEC 1'), { read: [], catalog: false }, 'SQL that does not parse names nothing (the process says why)');
  t.same(await selectTables("SELECT * FROM read_text('/etc/passwd')"), { read: [], catalog: false }, 'parsing reads nothing');
});

t.test('grants: the bound plan must stay within what was authorised', async (t) => {
  const users = { schema: 'main', table: 'users' };
  const events = { schema: 'main', table: 'events' };
  const grant = { read: [users], write: [] };
  t.equal(outsideGrant({ kind: 'select', read: [users], write: [], catalog: false }, grant), undefined);
  t.same(outsideGrant({ kind: 'select', read: [users, events], write: [], catalog: false }, grant), { table: 'events', verb: 'get' });
  t.same(outsideGrant({ kind: 'insert', read: [], write: [users], catalog: false }, grant), { table: 'users', verb: 'update' });
  t.same(
    outsideGrant({ kind: 'select', read: [], write: [], catalog: true }, grant),
    { table: '*', verb: 'get' },
    'metadata needs the catalog',
  );
  t.equal(
    outsideGrant(
      { kind: 'select', read: [users, events, { schema: 's', table: 'x' }], write: [], catalog: true },
      { read: ALL_TABLES, write: [] },
    ),
    undefined,
  );
  t.throws(() => checkGrant({ kind: 'select', read: [events], write: [], catalog: false }, grant), SandboxError);
  t.doesNotThrow(
    () => checkGrant({ kind: 'select', read: [events], write: [], catalog: false }, undefined),
    'no grant: no limit (an all-access principal)',
  );
});

t.test('query ids: chosen by the client within a pattern, listed and cancelled by their principal only', async (t) => {
  const app = await buildServer({ plugins: ['query'], apiTokens: ['a=alice', 'b=bob'], queryLog: () => undefined });
  t.teardown(() => app.close());
  const bad = await app.inject({
    method: 'POST',
    url: '/v1/query',
    headers: { authorization: 'Bearer a', 'x-featherman-query-id': 'no spaces/allowed' },
    payload: { catalog: 'c', sql: 'SELECT 1' },
  });
  t.equal(bad.statusCode, 400);
  t.match(bad.json().message, /x-featherman-query-id: must be 1 to 64 letters/);
  const mine = await app.inject({
    method: 'POST',
    url: '/v1/query',
    headers: { authorization: 'Bearer a', 'x-featherman-query-id': 'q-1' },
    payload: { catalog: 'c', sql: 'SELECT 1' },
  });
  t.equal(mine.headers['x-featherman-query-id'], 'q-1', 'the id comes back (here on a 503: no router)');
  t.same((await app.inject({ method: 'GET', url: '/v1/queries', headers: { authorization: 'Bearer a' } })).json(), { queries: [] });
  t.equal((await app.inject({ method: 'DELETE', url: '/v1/queries/q-1', headers: { authorization: 'Bearer b' } })).statusCode, 404);
  t.equal((await app.inject({ method: 'DELETE', url: '/v1/queries/q-1' })).statusCode, 401, 'DELETE needs a token too');
});
