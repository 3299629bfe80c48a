// The floor of this stack, for bench/pool.ts: the least a Node service can do to answer SQL over
// HTTP from the same lake. One process, Fastify and @duckdb/node-api, one connection, the lake
// attached from a copy of the catalog and its tables copied into memory (as a worker does), no
// router, no sandbox, no limits. POST /query {sql} answers {"columns":[...],"rows":[{...}]} like a
// worker, on the copies; Server-Timing `engine` is DuckDB's own time for it (no HTTP, no JSON).
// Run by bench/pool.ts as `node dist/bench/floor.js` with the lake's environment; it prints
// {"listening":"http://..."} once attached.
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { loadConfig } from '../lib/lake/config.js';
import { attachLake, openDuckDB } from '../lib/lake/session.js';
import { copySmallTables, COPIES } from '../lib/lake/table-copies.js';
import { quietSdkWarnings } from '../lib/warnings.js';

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  if (config.metadata.type !== 'duckdb') throw new Error('the floor server reads a DuckDB catalog file');
  const dir = mkdtempSync(join(tmpdir(), 'fm-floor-'));
  const copy = join(dir, 'catalog.ducklake');
  copyFileSync(config.metadata.path, copy);
  const session = await openDuckDB(config);
  await attachLake(session, { readOnly: true }, `ducklake:duckdb:${copy}`);
  // The worker's own copying (lib/lake/table-copies.ts), without its memory budget.
  await copySmallTables(session.connection, Infinity, () => false);
  await session.run(`USE ${COPIES}`);
  const connection = session.connection;

  const app = Fastify({ logger: false });
  app.post<{ Body: { sql: string } }>('/query', async (request, reply) => {
    const started = performance.now();
    const reader = await connection.runAndReadAll(request.body.sql);
    void reply.header('server-timing', `engine;dur=${(performance.now() - started).toFixed(3)}`);
    return { columns: reader.columnNames(), rows: reader.getRowObjectsJson() };
  });
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  console.log(JSON.stringify({ listening: address }));
  const stop = async () => {
    await app.close();
    session.close();
    rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  };
  process.once('SIGTERM', () => {
    void stop();
  });
  process.once('SIGINT', () => {
    void stop();
  });
}

quietSdkWarnings();
main().catch((err) => {
  console.error(err);
  process.exit(1);
});
