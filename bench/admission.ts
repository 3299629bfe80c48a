// Validate-webhook throughput beside a bare Fastify route, in one run:
//   - the server (a child process, so client and server do not share a CPU thread) serves
//     /admission/validate and /bare, a POST route that parses the same body and answers a
//     precomputed JSON of exactly the size the webhook answers;
//   - the client sends the same AdmissionReview to each for a fixed time over keep-alive
//     connections and prints requests/s, latency percentiles and the ratio.
// Run: node dist/bench/admission.js. BENCH_SECONDS, BENCH_CONNECTIONS override the sizes.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { validateReview } from '../lib/api/admission.js';
import { packageRoot } from '../lib/lake/config.js';
import { buildServer } from '../lib/server/server.js';
import { compareRoutes, fmt, forkServer, listenForParent } from './load.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
const ROUNDS = 3; // the two routes take turns, so background load hits both alike

function reviewOf(file: string, uid: string): string {
  const object = parse(readFileSync(join(packageRoot(), file), 'utf8'));
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: 'ducklake.featherman.dev', version: 'v1alpha1', kind: object.kind },
      resource: { group: 'ducklake.featherman.dev', version: 'v1alpha1', resource: 'ducklaketables' },
      name: object.metadata.name,
      namespace: 'default',
      operation: 'CREATE',
      userInfo: { username: 'bench' },
      object,
    },
  });
}

const WORKLOADS = {
  'allowed (examples/users-table.yaml)': reviewOf('examples/users-table.yaml', '0d6b8a3e-bench-allowed'),
  'denied (README table)': reviewOf('test/fixtures/original-readme/table.yaml', '0d6b8a3e-bench-denied'),
};

/** The server side: the admission plugin plus /bare answering a same-size JSON for each workload. */
async function serve(): Promise<void> {
  const app = await buildServer({ plugins: ['admission'] });
  const canned = new Map<string, string>();
  for (const body of Object.values(WORKLOADS)) {
    const answer = JSON.stringify(validateReview(JSON.parse(body)));
    const uid = JSON.parse(body).request.uid as string;
    const filler = answer.length - JSON.stringify({ uid, pad: '' }).length;
    canned.set(uid, JSON.stringify({ uid, pad: 'x'.repeat(filler) }));
  }
  app.post('/bare', async (req, reply) => {
    const uid = (req.body as { request: { uid: string } }).request.uid;
    reply.type('application/json');
    return canned.get(uid);
  });
  await listenForParent(app);
}

export async function run(): Promise<void> {
  const { child, port } = await forkServer(import.meta.url);
  try {
    console.log(
      `admission webhook vs bare Fastify: ${CONNECTIONS} keep-alive connections, ${SECONDS} s per route in ${ROUNDS} alternating rounds, ` +
        `server in its own process, Node ${process.version}`,
    );
    console.log(
      `${'workload'.padEnd(38)}${'route'.padEnd(22)}${'req/s'.padStart(10)}` +
        `${'p50 ms'.padStart(9)}${'p99 ms'.padStart(9)}${'reply B'.padStart(9)}`,
    );
    for (const [name, body] of Object.entries(WORKLOADS)) {
      const [bare, hook] = await compareRoutes(port, CONNECTIONS, body, ['/bare', '/admission/validate'], SECONDS, ROUNDS);
      for (const [route, r] of [
        ['bare Fastify route', bare],
        ['/admission/validate', hook],
      ] as const) {
        console.log(
          `${name.padEnd(38)}${route.padEnd(22)}${fmt(r.rps).padStart(10)}` +
            `${fmt(r.p50, 2).padStart(9)}${fmt(r.p99, 2).padStart(9)}${fmt(r.bytes).padStart(9)}`,
        );
      }
      console.log(`${name.padEnd(38)}${'ratio validate/bare'.padEnd(22)}${fmt(hook.rps / bare.rps, 2).padStart(10)}`);
    }
  } finally {
    child.disconnect();
  }
}

if (process.argv.includes('--server')) void serve();
else if (import.meta.url === `file://${process.argv[1]}`) void run();
