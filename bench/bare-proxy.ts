// A bare HTTP proxy, for bench/pool.ts: what one more HTTP hop in front of a worker costs on this
// machine, measured beside the router. It runs in the bench's process, as the router does, reads
// the body, forwards {sql} to one worker on a kept-alive connection and sends the answer back
// whole, with a Content-Length, as the router does with small answers. No authentication, queue,
// limits, metrics or query log: the least a router in Node can add.
import { Agent, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface BareProxy {
  url: string;
  close(): Promise<void>;
}

export async function startBareProxy(workerUrl: string): Promise<BareProxy> {
  const worker = new URL(workerUrl);
  const agent = new Agent({ keepAlive: true });
  const server = createServer((req, res) => {
    const body: Buffer[] = [];
    req.on('data', (chunk: Buffer) => body.push(chunk));
    req.on('end', () => {
      const forwarded = JSON.stringify({ sql: (JSON.parse(Buffer.concat(body).toString()) as { sql: string }).sql });
      const toWorker = request(
        {
          host: worker.hostname,
          port: worker.port,
          path: '/query',
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(forwarded) },
        },
        (answer) => {
          const chunks: Buffer[] = [];
          answer.on('data', (chunk: Buffer) => chunks.push(chunk));
          answer.on('end', () => {
            const whole = Buffer.concat(chunks);
            res.writeHead(answer.statusCode ?? 502, {
              'content-type': answer.headers['content-type'] ?? 'application/json',
              'content-length': whole.length,
            });
            res.end(whole);
          });
        },
      );
      toWorker.on('error', () => res.writeHead(502).end());
      toWorker.end(forwarded);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      agent.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
