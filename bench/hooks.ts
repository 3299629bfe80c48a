// Sync-hook throughput and p99 beside a bare Fastify route, in one run. The request is the v2 sync
// Metacontroller sends for examples/users-table.yaml with 20 observed children (old apply Jobs with
// their status) and their pods in `related`; the bare route parses the same body and answers a
// precomputed JSON of the same size. Server in its own process.
// Run: node dist/bench/hooks.js. BENCH_SECONDS, BENCH_CONNECTIONS override the sizes.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../lib/lake/config.js';
import { buildServer } from '../lib/server/server.js';
import { compareRoutes, fmt, forkServer, listenForParent } from './load.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
const ROUNDS = 3;

function syncRequest(): string {
  const req = JSON.parse(readFileSync(join(packageRoot(), 'examples', 'hook-requests', 'table-sync.json'), 'utf8'));
  const jobs: Record<string, unknown> = {};
  const pods: Record<string, unknown> = {};
  for (let i = 0; i < 20; i++) {
    const name = `users-apply-${i.toString(16).padStart(10, '0')}`;
    jobs[`analytics/${name}`] = {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: {
        name,
        namespace: 'analytics',
        uid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
        labels: {
          'app.kubernetes.io/name': 'featherman',
          'app.kubernetes.io/component': 'table-apply',
          'ducklake.featherman.dev/table': 'users',
          'controller-uid': req.parent.metadata.uid,
        },
      },
      spec: {
        backoffLimit: 6,
        template: {
          spec: {
            containers: [{ name: 'featherman', image: 'ghcr.io/featherman/featherman:0.1.0', args: ['table', 'apply'] }],
            restartPolicy: 'Never',
          },
        },
      },
      status: { succeeded: 1, conditions: [{ type: 'Complete', status: 'True', lastTransitionTime: '2026-11-24T11:59:30Z' }] },
    };
    pods[`analytics/${name}-x7k2p`] = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `${name}-x7k2p`, namespace: 'analytics', labels: { 'job-name': name, 'ducklake.featherman.dev/table': 'users' } },
      status: {
        phase: 'Succeeded',
        containerStatuses: [
          {
            name: 'featherman',
            state: {
              terminated: {
                exitCode: 0,
                finishedAt: '2026-11-24T11:59:29Z',
                message: JSON.stringify({ ok: true, command: 'table apply', action: 'unchanged', snapshotId: i }),
              },
            },
          },
        ],
      },
    };
  }
  req.children['Job.batch/v1'] = jobs;
  req.related['Pod.v1'] = pods;
  return JSON.stringify(req);
}

async function serve(): Promise<void> {
  const app = await buildServer({ plugins: ['hooks'] });
  let canned = '';
  app.post('/bare', async (_req, reply) => reply.type('application/json').send(canned));
  const answer = (
    await app.inject({
      method: 'POST',
      url: '/hooks/ducklaketables/sync',
      headers: { 'content-type': 'application/json' },
      payload: syncRequest(),
    })
  ).body;
  canned = JSON.stringify({ pad: 'x'.repeat(answer.length - JSON.stringify({ pad: '' }).length) });
  await listenForParent(app);
}

export async function run(): Promise<void> {
  const { child, port } = await forkServer(import.meta.url);
  const body = syncRequest();
  try {
    console.log(
      `\nsync hook (DuckLakeTable, 20 observed Jobs + 20 pods, ${fmt(body.length)} B request) vs bare Fastify: ` +
        `${CONNECTIONS} connections, ${SECONDS} s per route in ${ROUNDS} rounds`,
    );
    console.log(`${'route'.padEnd(34)}${'req/s'.padStart(10)}${'p50 ms'.padStart(9)}${'p99 ms'.padStart(9)}${'reply B'.padStart(9)}`);
    const [b, h] = await compareRoutes(port, CONNECTIONS, body, ['/bare', '/hooks/ducklaketables/sync'], SECONDS, ROUNDS);
    for (const [route, r] of [
      ['bare Fastify route', b],
      ['/hooks/ducklaketables/sync', h],
    ] as const) {
      console.log(
        `${route.padEnd(34)}${fmt(r.rps).padStart(10)}${fmt(r.p50, 2).padStart(9)}${fmt(r.p99, 2).padStart(9)}${fmt(r.bytes).padStart(9)}`,
      );
    }
    console.log(`${'ratio sync/bare (req/s)'.padEnd(34)}${fmt(h.rps / b.rps, 2).padStart(10)}`);
  } finally {
    child.disconnect();
  }
}

if (process.argv.includes('--server')) void serve();
else if (import.meta.url === `file://${process.argv[1]}`) void run();
