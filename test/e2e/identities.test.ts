// Who may query what, on a real kube-apiserver (test/helpers/e2e-env.ts): ServiceAccounts with
// tokens from `kubectl create token`, checked by TokenReview; every table a query reads checked
// by SubjectAccessReview against plain RBAC Roles (examples/rbac/analyst-loader.yaml). The query
// service runs as the `featherman` ServiceAccount with exactly the featherman-router ClusterRole
// of metacontroller/rbac.yaml, so what it may do is what an install grants. `kubectl auth can-i`
// must agree with every answer; the query log must name the right principals and tables.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../lib/lake/config.js';
import { featherman } from '../helpers/cli.js';
import { clusterBinariesMissing } from '../helpers/cluster.js';
import { BUCKET, kubectlTools, startE2eEnv, type E2eEnv } from '../helpers/e2e-env.js';
import type { KubeObj } from '../helpers/metacontroller-standin.js';
import { Postgres } from '../helpers/postgres.js';
import { kubeconfigFor, signServiceAccountToken, startQueryService, type QueryService } from '../helpers/query-service.js';

const missing = clusterBinariesMissing();
if (missing) {
  t.skip(`the test cluster is not built: ${missing}`, () => {});
} else {
  const root = packageRoot();
  const env: E2eEnv = await startE2eEnv();
  t.teardown(() => env.stop());
  t.comment(`hooks driven by ${env.metacontroller.description}`);
  const { kubectl, minio } = env;
  const dir = mkdtempSync(join(tmpdir(), 'fm-identities-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { ok, get, wait } = kubectlTools(env);
  const example = (file: string) => readFileSync(join(root, 'examples', file), 'utf8');
  const lakeEnv = () => ({
    FEATHERMAN_METADATA: `duckdb:${env.kubelet.pvcDir('default', 'example-catalog')}/metadata.ducklake`,
    FEATHERMAN_DATA_PATH: `s3://${BUCKET}/lakes/example/data/`,
    FEATHERMAN_CATALOG: 'example',
    ...minio.env(),
  });
  const ready = (kind: string, name: string, namespace = 'default') =>
    wait(`${kind} ${namespace}/${name} Ready`, 180_000, async () => {
      const x = await get([kind, name, '-n', namespace]);
      if (x?.status?.phase === 'Failed') throw new Error(`${kind} ${name} failed: ${JSON.stringify(x.status)}`);
      return x?.status?.phase === 'Ready' ? x : undefined;
    });

  // The lake: the example catalog with two tables, users and events, each with rows.
  const secret = example('s3-credentials.yaml')
    .replace('REPLACE-WITH-ACCESS-KEY-ID', minio.accessKey)
    .replace('REPLACE-WITH-SECRET-ACCESS-KEY', minio.secretKey);
  ok(await kubectl(['apply', '-f', '-'], secret), 'apply the credentials Secret');
  ok(await kubectl(['apply', '-f', '-'], example('catalog.yaml').replace('http://minio.storage.svc:9000', minio.url)), 'apply the catalog');
  await ready('dlc', 'example');
  ok(await kubectl(['apply', '-f', '-'], example('users-table.yaml')), 'apply the users table');
  ok(
    await kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'ducklake.featherman.dev/v1alpha1',
        kind: 'DuckLakeTable',
        metadata: { name: 'events' },
        spec: {
          catalogRef: 'example',
          name: 'events',
          columns: [
            { name: 'id', type: 'INTEGER' },
            { name: 'what', type: 'VARCHAR' },
          ],
        },
      }),
    ),
    'apply the events table',
  );
  await ready('dlt', 'users');
  await ready('dlt', 'events');
  for (const sql of [
    "INSERT INTO users VALUES (1, 'ada', TIMESTAMP '2026-11-10 09:00:00'), (2, 'bob', TIMESTAMP '2026-11-11 09:00:00')",
    "INSERT INTO events VALUES (1, 'login'), (2, 'logout'), (3, 'login')",
  ]) {
    const r = await featherman(['query', '--write', '--sql', sql], lakeEnv());
    if (r.code !== 0) throw new Error(`${sql}: ${r.stderr}`);
  }
  ok(
    await kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'ducklake.featherman.dev/v1alpha1',
        kind: 'DuckLakePool',
        metadata: { name: 'ids' },
        spec: { minSize: 1, maxSize: 1, catalogRef: { name: 'example' }, maxQueryDuration: '60s' },
      }),
    ),
    'apply the pool',
  );
  const worker = await wait('pool ids with a ready worker', 120_000, async () => {
    const p = await get(['dlp', 'ids']);
    if (!p) return undefined;
    const pods = await get<{ items: (KubeObj & { status?: { conditions?: { type: string; status: string }[]; podIP?: string } })[] }>([
      'pods',
      '-l',
      `controller-uid=${p.metadata.uid}`,
    ]);
    return (pods?.items ?? []).find((x) => x.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
  });

  // The service, as the featherman ServiceAccount with the router's ClusterRole and nothing else.
  ok(await kubectl(['create', 'namespace', 'featherman']), 'namespace featherman');
  ok(await kubectl(['create', 'serviceaccount', 'featherman', '-n', 'featherman']), "the service's ServiceAccount");
  ok(await kubectl(['apply', '-f', join(root, 'metacontroller', 'rbac.yaml')]), 'apply metacontroller/rbac.yaml');
  ok(await kubectl(['apply', '-f', join(root, 'metacontroller', 'query-roles.yaml')]), 'apply metacontroller/query-roles.yaml');
  const serviceToken = ok(
    await kubectl(['create', 'token', 'featherman', '-n', 'featherman', '--duration', '2h']),
    'a token for the service',
  ).trim();
  const service: QueryService = await startQueryService({
    KUBECONFIG: kubeconfigFor(env.cluster, serviceToken, join(dir, 'service.kubeconfig')),
    FEATHERMAN_IMAGE: 'featherman:e2e',
  });
  t.teardown(() => service.stop());

  // The principals: analyst (get on users only) and loader from the example Roles; stranger has nothing.
  ok(await kubectl(['apply', '-f', join(root, 'examples', 'rbac', 'analyst-loader.yaml')]), 'apply examples/rbac/analyst-loader.yaml');
  ok(await kubectl(['create', 'serviceaccount', 'stranger']), 'the stranger');
  const token = async (sa: string, audience = 'featherman') =>
    ok(await kubectl(['create', 'token', sa, '--audience', audience, '--duration', '1h']), `a token for ${sa}`).trim();
  const tokens = { analyst: await token('analyst'), stranger: await token('stranger'), loader: await token('loader') };
  const user = (sa: string) => `system:serviceaccount:default:${sa}`;

  const query = async (bearer: string | undefined, sql: string) => {
    const res = await fetch(`${service.url}/v1/query`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
      body: JSON.stringify({ catalog: 'example', pool: 'ids', sql }),
    });
    const text = await res.text();
    let json: Record<string, unknown> = {};
    try {
      json = JSON.parse(text) as Record<string, unknown>;
    } catch {
      /* not JSON */
    }
    return { status: res.status, text, json, id: res.headers.get('x-featherman-query-id') };
  };
  const canI = async (sa: string, verb: string, table: string) => {
    const r = await kubectl([
      'auth',
      'can-i',
      verb,
      `ducklaketables.ducklake.featherman.dev/${table}`,
      '--subresource=data',
      '-n',
      'default',
      '--as',
      user(sa),
    ]);
    return r.stdout.trim() === 'yes';
  };

  await t.test('analyst reads users and is refused events (403 naming the table and the verb)', async (t) => {
    let last = '';
    const users = await wait("the analyst's first answer", 60_000, async () => {
      const r = await query(tokens.analyst, 'SELECT count(*) AS n FROM users');
      if (r.status !== 200) {
        last = `${r.status} ${r.text}`;
        return undefined;
      }
      return r;
    }).catch((e: Error) => {
      throw new Error(`${e.message.split('\n')[0]}; last answer: ${last}`);
    });
    t.same((users.json as { rows: unknown[] }).rows, [{ n: '2' }], 'the rows of users');
    t.ok(users.id, 'the answer carries X-Featherman-Query-Id');
    t.equal(await canI('analyst', 'get', 'users'), true, 'kubectl auth can-i agrees: yes');

    const events = await query(tokens.analyst, 'SELECT count(*) FROM events');
    t.equal(events.status, 403, events.text);
    t.match(events.json, { table: 'events', verb: 'get' });
    t.match(String(events.json.message), /may not read table events of catalog example: that needs get on ducklaketables\/data "events"/);
    t.equal(await canI('analyst', 'get', 'events'), false, 'kubectl auth can-i agrees: no');

    const join_ = await query(tokens.analyst, 'SELECT u.name, e.what FROM users u JOIN events e ON u.id = e.id');
    t.equal(join_.status, 403, 'a join with one refused table is refused whole');
    t.match(join_.json, { table: 'events', verb: 'get' });
    // A view or CTE cannot launder a table: the worker reports the bound plan's scans.
    const cte = await query(tokens.analyst, 'WITH users AS (SELECT * FROM events) SELECT count(*) FROM users');
    t.equal(cte.status, 403, 'a CTE named like an allowed table reads events: refused');
    t.match(cte.json, { table: 'events' });
    const meta = await query(tokens.analyst, 'SELECT count(*) FROM snapshots()');
    t.equal(meta.status, 403, "the catalog's metadata needs the catalog grant");
    t.match(meta.json, { table: '*', verb: 'get' });
  });

  await t.test('psql over TLS with a Kubernetes token: the same refusal as over HTTP (42501), \\dt, \\d, rows, errors', async (t) => {
    // Debian's psql against the e2e service's Postgres listener, verifying its serving certificate;
    // the password is the analyst's token, checked by TokenReview, each table by SubjectAccessReview.
    const psql = (sa: keyof typeof tokens, commands: string[]) =>
      spawnSync(
        'psql',
        [
          `host=127.0.0.1 port=${env.pgPort} dbname=example.ids user=${sa} sslmode=verify-full sslrootcert=${env.caFile}`,
          ...['-X', '-v', 'VERBOSITY=verbose', ...commands.flatMap((c) => ['-c', c])],
        ],
        { encoding: 'utf8', env: { PATH: process.env.PATH, PGPASSWORD: tokens[sa], PGCONNECT_TIMEOUT: '20' }, timeout: 60_000 },
      );
    const refused = psql('analyst', [
      'SELECT count(*) FROM events',
      'SELECT u.name, e.what FROM users u JOIN events e ON u.id = e.id',
      'WITH users AS (SELECT * FROM events) SELECT count(*) FROM users',
    ]);
    const errors = refused.stderr.split('\n').filter((l) => l.startsWith('ERROR:'));
    t.equal(errors.length, 3, refused.stderr);
    for (const e of errors) {
      t.match(
        e,
        /^ERROR:\s+42501: .*analyst may not read table events of catalog example: that needs get on ducklaketables\/data "events"/,
      );
    }
    const r = psql('analyst', [
      '\\conninfo',
      '\\dt',
      '\\d users',
      '\\pset format unaligned',
      'SELECT * FROM no_such_table',
      'SELECT u.name, i FROM users u, range(10) t(i) ORDER BY u.id, i',
    ]);
    t.equal(r.status, 0, `the last command succeeded: ${r.stderr}`);
    t.match(r.stdout, /SSL connection \(protocol: TLSv1\.[23]/, 'the connection is TLS, the certificate verified');
    t.match(r.stdout, /\bmain\s+\|\s+users\s+\|\s+table\b/, '\\dt lists users');
    t.notMatch(r.stdout, /\|\s+events\s+\|/, '\\dt does not list events, which the analyst may not read');
    t.match(r.stdout, /Table "main\.users"/);
    t.match(r.stdout, /\bname\s+\|\s+text\s/, '\\d users: the columns');
    const rows = r.stdout.split('\n').filter((l) => /^(ada|bob)\|\d$/.test(l));
    t.equal(rows.length, 20, 'a SELECT of 20 rows');
    t.equal(rows[0], 'ada|0');
    t.equal(rows[19], 'bob|9');
    t.match(r.stdout, /\(20 rows\)/);
    t.match(r.stderr, /^ERROR:\s+42P01: /m, 'an error with its SQLSTATE');
    const stranger = psql('stranger', ['SELECT count(*) FROM users']);
    t.match(stranger.stderr, /^ERROR:\s+42501: /m, 'the stranger is refused users too');
    const bad = spawnSync(
      'psql',
      [`host=127.0.0.1 port=${env.pgPort} dbname=example.ids user=x sslmode=verify-full sslrootcert=${env.caFile}`, '-X', '-c', 'SELECT 1'],
      { encoding: 'utf8', env: { PATH: process.env.PATH, PGPASSWORD: 'not-a-token' }, timeout: 60_000 },
    );
    t.match(bad.stderr, /password authentication failed/, 'a token the API server does not vouch for');
  });

  await t.test('psql over TLS: Ctrl-C (a CancelRequest) stops a long query within 1 s; \\copy of 1,000,000 rows', async (t) => {
    const conninfo = `host=127.0.0.1 port=${env.pgPort} dbname=example.ids user=analyst sslmode=verify-full sslrootcert=${env.caFile}`;
    const psqlEnv = { PATH: process.env.PATH, PGPASSWORD: tokens.analyst, PGCONNECT_TIMEOUT: '20' };
    const child = spawn('psql', [conninfo, '-X', '-c', 'SELECT count(*) FROM range(1000000000000::BIGINT)'], { env: psqlEnv });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    // Interrupted once the pool's worker has the query (the service's own gauge says so).
    await wait('the long query running on the worker', 60_000, async () => {
      const text = await (await fetch(`${env.queryUrl}/metrics`)).text();
      return /ducklake_pool_pods_busy\{pool="ids",namespace="default"\} [1-9]/.test(text) || undefined;
    });
    const sent = performance.now();
    child.kill('SIGINT');
    await exited;
    const took = performance.now() - sent;
    t.match(stderr, /canceling statement due to user request/, 'psql reports the cancel');
    t.ok(took < 1000, `psql returned ${Math.round(took)} ms after Ctrl-C`);

    const file = join(dir, 'copied.tsv');
    const copied = spawnSync(
      'psql',
      [conninfo, '-X', '-c', `\\copy (SELECT u.id, u.name, i FROM users u, range(500000) t(i) ORDER BY u.id, i) TO '${file}'`],
      { encoding: 'utf8', env: psqlEnv, timeout: 120_000 },
    );
    t.equal(copied.status, 0, copied.stderr);
    t.match(copied.stdout, /COPY 1000000/);
    const lines = readFileSync(file, 'utf8').split('\n');
    t.equal(lines.length - 1, 1_000_000, 'every row in the file');
    t.equal(lines[0], '1\tada\t0');
    t.equal(lines[999_999], '2\tbob\t499999');
  });

  await t.test('stranger is refused every table; kubectl auth can-i agrees', async (t) => {
    for (const table of ['users', 'events']) {
      const r = await query(tokens.stranger, `SELECT * FROM ${table}`);
      t.equal(r.status, 403, `${table}: ${r.text}`);
      t.match(r.json, { table, verb: 'get' });
      t.equal(await canI('stranger', 'get', table), false, `can-i get ${table}: no`);
    }
    t.equal(await canI('loader', 'update', 'users'), true, 'the loader may update users (can-i)');
    t.equal(await canI('analyst', 'update', 'users'), false, 'the analyst may not (can-i)');
  });

  await t.test('a token the API server does not vouch for gets 401', async (t) => {
    t.equal((await query(undefined, 'SELECT 1')).status, 401, 'no token');
    t.equal((await query('not-a-token', 'SELECT 1')).status, 401, 'garbage');
    const foreign = await token('analyst', 'some-other-service');
    const f = await query(foreign, 'SELECT count(*) FROM users');
    t.equal(f.status, 401, `a token for another audience: ${f.text}`);
    const sa = (await get(['serviceaccount', 'analyst']))!;
    const fresh = signServiceAccountToken(
      env.cluster,
      { namespace: 'default', name: 'analyst', uid: sa.metadata.uid! },
      'featherman',
      3600,
    );
    t.equal(
      (await query(fresh, 'SELECT count(*) FROM users')).status,
      200,
      'a token signed the same way, unexpired, is accepted (the forgery is faithful)',
    );
    const expired = signServiceAccountToken(
      env.cluster,
      { namespace: 'default', name: 'analyst', uid: sa.metadata.uid! },
      'featherman',
      -60,
    );
    const e = await query(expired, 'SELECT count(*) FROM users');
    t.equal(e.status, 401, `an expired token: ${e.text}`);
    t.notMatch(e.text, expired.slice(-20), 'the answer never quotes the token');
  });

  await t.test(
    'cancel: DELETE /v1/queries/{id}, or the client going away, stops a range(1e12) on the worker within a second',
    async (t) => {
      const stats = async () =>
        (await (await fetch(`http://${worker.status!.podIP}:8080/stats`)).json()) as { activeQueries: number; ready: boolean };
      const slow = 'SELECT count(*) FROM range(1000000000000) r(i) WHERE i % 7 = 3';
      const send = (id: string, signal?: AbortSignal) =>
        fetch(`${service.url}/v1/query`, {
          method: 'POST',
          signal,
          headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens.analyst}`, 'x-featherman-query-id': id },
          body: JSON.stringify({ catalog: 'example', pool: 'ids', sql: slow }),
        });
      const idleWithin = async () => {
        const from = Date.now();
        await wait('the worker idle', 10_000, async () => ((await stats()).activeQueries === 0 ? true : undefined));
        return Date.now() - from;
      };

      const id = `cancel-${Date.now()}`;
      const answer = send(id);
      await wait('the query running on the worker', 30_000, async () => ((await stats()).activeQueries === 1 ? true : undefined));
      const listed = (await (
        await fetch(`${service.url}/v1/queries`, { headers: { authorization: `Bearer ${tokens.analyst}` } })
      ).json()) as { queries: { id: string }[] };
      t.same(
        listed.queries.map((q) => q.id),
        [id],
        "GET /v1/queries lists the analyst's running query",
      );
      const other = await fetch(`${service.url}/v1/queries/${id}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${tokens.stranger}` },
      });
      t.equal(other.status, 404, 'another principal cannot cancel it (and learns nothing of it)');
      const del = await fetch(`${service.url}/v1/queries/${id}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${tokens.analyst}` },
      });
      t.equal(del.status, 202, 'its principal can');
      const ms = await idleWithin();
      t.ok(ms < 1000, `the worker was idle ${ms} ms after the DELETE`);
      const res = await answer;
      t.equal(res.status, 499, 'the caller is told it was cancelled');
      t.match(await res.text(), /was cancelled/);

      const gone = new AbortController();
      const id2 = `disconnect-${Date.now()}`;
      let early = '';
      const second = send(id2, gone.signal).then(
        async (r) => {
          early = `${r.status} ${await r.text()}`;
          return r;
        },
        (e: Error) => e,
      );
      await wait('the second query running on the worker', 30_000, async () => {
        if (early) throw new Error(`the second query was answered before it could be cancelled: ${early}`);
        return (await stats()).activeQueries === 1 ? true : undefined;
      }).catch((e: Error) => {
        throw new Error(
          `${e.message.split('\n')[0]} (answer: ${early || 'none yet'}; log: ${JSON.stringify(service.queryLog().slice(-3))})`,
        );
      });
      gone.abort();
      const ms2 = await idleWithin();
      t.ok(ms2 < 1000, `the worker was idle ${ms2} ms after the client went away`);
      t.type(await second, Error, 'the client saw its own abort');
      const log = await wait('both in the query log', 10_000, async () => {
        const lines = service.queryLog().filter((l) => l.id === id || l.id === id2);
        return lines.length === 2 ? lines : undefined;
      });
      t.same(
        log.map((l) => l.outcome),
        ['cancelled', 'cancelled'],
        'the query log shows both cancelled',
      );
    },
  );

  await t.test('loader inserts into users through a writing pool on a Postgres catalog; the analyst may not', async (t) => {
    // Namespace `writers`: a Postgres catalog `shared` whose users table is the DuckLakeTable `users` there.
    const pg = await Postgres.start();
    t.teardown(() => pg.stop());
    pg.createDatabase('lake');
    const ns = 'writers';
    ok(await kubectl(['create', 'namespace', ns]), 'namespace writers');
    ok(await kubectl(['apply', '-n', ns, '-f', '-'], secret), 'the S3 credentials there');
    ok(
      await kubectl([
        'create',
        'secret',
        'generic',
        'lake-db-app',
        '-n',
        ns,
        '--from-literal=host=127.0.0.1',
        `--from-literal=port=${pg.port}`,
        '--from-literal=dbname=lake',
        '--from-literal=user=postgres',
        `--from-literal=password=${pg.password}`,
      ]),
      'the Postgres connection Secret',
    );
    ok(
      await kubectl(
        ['apply', '-n', ns, '-f', '-'],
        JSON.stringify({
          apiVersion: 'ducklake.featherman.dev/v1alpha1',
          kind: 'DuckLakeCatalog',
          metadata: { name: 'shared' },
          spec: {
            objectStore: {
              endpoint: minio.url,
              bucket: BUCKET,
              prefix: 'lakes/shared',
              region: 'us-east-1',
              urlStyle: 'path',
              credentialsSecret: { name: 's3-credentials' },
            },
            metadata: { type: 'postgres', connectionSecret: { name: 'lake-db-app' } },
          },
        }),
      ),
      'apply the Postgres catalog',
    );
    await ready('dlc', 'shared', ns);
    ok(
      await kubectl(['apply', '-n', ns, '-f', '-'], example('users-table.yaml').replace('catalogRef: example', 'catalogRef: shared')),
      'the users table of the shared catalog',
    );
    await ready('dlt', 'users', ns);
    ok(
      await kubectl(
        ['apply', '-n', ns, '-f', '-'],
        JSON.stringify({
          apiVersion: 'ducklake.featherman.dev/v1alpha1',
          kind: 'DuckLakePool',
          metadata: { name: 'loaders' },
          spec: { minSize: 1, maxSize: 1, catalogRef: { name: 'shared', readOnly: false } },
        }),
      ),
      'a writing pool',
    );
    await wait('pool writers/loaders with a ready worker', 120_000, async () => {
      const p = await get(['dlp', 'loaders', '-n', ns]);
      if (!p) return undefined;
      const pods = await get<{ items: (KubeObj & { status?: { conditions?: { type: string; status: string }[] } })[] }>([
        'pods',
        '-n',
        ns,
        '-l',
        `controller-uid=${p.metadata.uid}`,
      ]);
      return (pods?.items ?? []).some((x) => x.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
        ? true
        : undefined;
    });
    ok(await kubectl(['apply', '-n', ns, '-f', join(root, 'examples', 'rbac', 'analyst-loader.yaml')]), 'the example Roles in writers');
    const loader = ok(
      await kubectl(['create', 'token', 'loader', '-n', ns, '--audience', 'featherman', '--duration', '1h']),
      'a token for writers/loader',
    ).trim();
    const analyst = ok(
      await kubectl(['create', 'token', 'analyst', '-n', ns, '--audience', 'featherman', '--duration', '1h']),
      'a token for writers/analyst',
    ).trim();
    const write = async (bearer: string, sql: string) => {
      const res = await fetch(`${service.url}/v1/query`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}` },
        body: JSON.stringify({ catalog: 'shared', namespace: ns, pool: 'loaders', sql }),
      });
      const text = await res.text();
      let json: Record<string, unknown> = {};
      try {
        json = JSON.parse(text) as Record<string, unknown>;
      } catch {
        /* not JSON */
      }
      return { status: res.status, text, json };
    };
    const canIn = async (sa: string, verb: string) =>
      (
        await kubectl([
          'auth',
          'can-i',
          verb,
          'ducklaketables.ducklake.featherman.dev/users',
          '--subresource=data',
          '-n',
          ns,
          '--as',
          `system:serviceaccount:${ns}:${sa}`,
        ])
      ).stdout.trim() === 'yes';

    const inserted = await write(loader, "INSERT INTO users VALUES (10, 'carol', TIMESTAMP '2026-11-12 09:00:00')");
    t.equal(inserted.status, 200, `the loader inserts: ${inserted.text}`);
    t.equal(await canIn('loader', 'update'), true, 'can-i update: yes');
    const count = await write(loader, 'SELECT count(*) AS n FROM users');
    t.same((count.json as { rows?: unknown }).rows, [{ n: '1' }], 'and reads the row back (its Role has get too)');
    const refused = await write(analyst, "INSERT INTO users VALUES (11, 'mallory', TIMESTAMP '2026-11-12 09:00:00')");
    t.equal(refused.status, 403, refused.text);
    t.match(refused.json, { table: 'users', verb: 'update' });
    t.equal(await canIn('analyst', 'update'), false, 'can-i update: no');
    t.equal(await canIn('analyst', 'get'), true, 'can-i get: yes (and the API let it read, below)');
    t.equal((await write(analyst, 'SELECT count(*) FROM users')).status, 200, 'the analyst reads users there');
    const line = service
      .queryLog()
      .find((l) => (l.principal as { user: string }).user === `system:serviceaccount:${ns}:loader` && l.kind === 'insert');
    t.match(
      line,
      { catalog: 'shared', namespace: ns, pool: 'loaders', tables: { read: [], write: ['users'] }, outcome: 'ok' },
      'the query log line of the insert',
    );
  });

  await t.test('the query log names the principals and tables, and never a token', async (t) => {
    const log = service.queryLog();
    const analystUsers = log.find(
      (l) =>
        (l.principal as { user: string }).user === user('analyst') &&
        l.outcome === 'ok' &&
        JSON.stringify(l.tables).includes('"read":["users"]'),
    );
    t.ok(analystUsers, "the analyst's read of users");
    t.match(analystUsers, { catalog: 'example', pool: 'ids', namespace: 'default', kind: 'select', rows: 1, status: 200 });
    const refused = log.find(
      (l) =>
        (l.principal as { user: string }).user === user('analyst') &&
        l.outcome === 'forbidden' &&
        (l.tables as { read: string[] }).read.includes('events'),
    );
    t.ok(refused, "the analyst's refused read of events");
    const stranger = log.filter((l) => (l.principal as { user: string }).user === user('stranger'));
    t.ok(stranger.length >= 2 && stranger.every((l) => l.outcome === 'forbidden'), 'the stranger: refused, every time');
    const text = service.lines().join('\n');
    for (const [name, tok] of Object.entries(tokens)) t.notOk(text.includes(tok), `no ${name} token in the service's output`);
    t.notOk(text.includes('login'), 'no row value or literal');
  });
}
