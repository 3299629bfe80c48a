// A small, bounded HTTP load generator shared by the benchmarks: keep-alive connections on
// loopback, each sending the same POST for a fixed time; latencies in milliseconds.
import { fork, type ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';

export interface Sample {
  latencies: number[];
  elapsed: number;
  bytes: number;
  errors: number;
}
export interface Result {
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  bytes: number;
  errors: number;
}

export function summarize(samples: Sample[]): Result {
  const latencies = samples.flatMap((s) => s.latencies).sort((a, b) => a - b);
  const elapsed = samples.reduce((a, s) => a + s.elapsed, 0);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  return {
    requests: latencies.length,
    rps: latencies.length / elapsed,
    p50: at(0.5),
    p99: at(0.99),
    bytes: samples[0]?.bytes ?? 0,
    errors: samples.reduce((a, s) => a + s.errors, 0),
  };
}

export async function load(port: number, connections: number, path: string, body: string, seconds: number): Promise<Sample> {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const latencies: number[] = [];
  let errors = 0;
  let bytes = 0;
  const deadline = performance.now() + seconds * 1000;
  const one = () =>
    new Promise<void>((resolve) => {
      const t0 = performance.now();
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path,
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          let size = 0;
          res.on('data', (d: Buffer) => {
            size += d.length;
          });
          res.on('end', () => {
            if (res.statusCode !== 200) errors++;
            bytes = size;
            latencies.push(performance.now() - t0);
            resolve();
          });
        },
      );
      req.on('error', () => {
        errors++;
        resolve();
      });
      req.end(body);
    });
  const started = performance.now();
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < deadline) await one();
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  agent.destroy();
  return { latencies, elapsed, bytes, errors };
}

/** A number for the tables the benchmarks print: thousands separators, `digits` decimals. */
export const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/**
 * Two routes side by side under the same load: a short warm-up of each (JIT, connections), then
 * `rounds` alternating rounds so drift on a busy machine hits both alike. Any non-200 fails the run.
 */
export async function compareRoutes(
  port: number,
  connections: number,
  body: string,
  routes: readonly [string, string],
  seconds: number,
  rounds: number,
): Promise<[Result, Result]> {
  for (const route of routes) await load(port, connections, route, body, 0.5);
  const samples: [Sample[], Sample[]] = [[], []];
  for (let r = 0; r < rounds; r++) {
    for (const i of [0, 1] as const) samples[i].push(await load(port, connections, routes[i], body, seconds / rounds));
  }
  const results: [Result, Result] = [summarize(samples[0]), summarize(samples[1])];
  if (results[0].errors || results[1].errors)
    throw new Error(`errors during the run: ${routes[0]} ${results[0].errors}, ${routes[1]} ${results[1].errors}`);
  return results;
}

/** In the forked server process: listen on a free loopback port, tell the parent, exit with it. */
export async function listenForParent(app: FastifyInstance): Promise<void> {
  await app.listen({ port: 0, host: '127.0.0.1' });
  process.send!({ port: (app.server.address() as { port: number }).port });
  process.on('disconnect', () => {
    void app.close().then(() => process.exit(0));
  });
}

/** Fork `moduleUrl --server` (so client and server do not share a CPU thread) and wait for its port. */
export async function forkServer(moduleUrl: string): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(fileURLToPath(moduleUrl), ['--server'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m) => resolve((m as { port: number }).port));
    child.once('exit', (code) => reject(new Error(`bench server exited ${code}`)));
  });
  return { child, port };
}
