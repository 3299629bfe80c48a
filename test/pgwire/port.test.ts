// When the Postgres port is taken (a local PostgreSQL on 5432 is common on a laptop), `npm start`
// (`serve --embedded`) still serves HTTP and says in one line which port and which flag; a cluster
// `serve` (not --embedded) fails at once, naming both. The port is held by a real listener.
import t from 'tap';
import { createServer, type Server } from 'node:net';
import { featherman } from '../helpers/cli.js';
import { startWireService, TOKEN } from './service.js';

let holder: Server;
let held = 0;
let accepted = 0;

t.before(async () => {
  holder = createServer((socket) => {
    accepted++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  held = (holder.address() as { port: number }).port;
});
t.teardown(() => holder.close());

t.test('--embedded: HTTP serves, one line names the port and --pg-port', async (t) => {
  const service = await startWireService(['--pg-port', String(held), '--pg-host', '127.0.0.1']);
  t.teardown(() => service.stop());
  const lines = service.lines().filter((l) => l.includes(`Postgres port ${held}`));
  t.equal(lines.length, 1, 'one line about the port');
  const line = JSON.parse(lines[0]!) as { level: number; msg: string; pgPort: number };
  t.equal(line.level, 40, 'a warning');
  t.equal(line.pgPort, held);
  t.match(line.msg, new RegExp(`^Postgres port ${held} is in use .*: the Postgres listener is off, HTTP works; start with --pg-port `));
  const listening = JSON.parse(service.lines().find((l) => l.includes('featherman serve listening'))!) as Record<string, unknown>;
  t.notOk('pgPort' in listening, 'no Postgres port is announced');
  const res = await fetch(`${service.url}/v1/query`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ catalog: 'default', sql: 'SELECT count(*) AS n FROM users' }),
  });
  t.equal(res.status, 200);
  t.same(((await res.json()) as { rows: unknown[] }).rows, [{ n: 100 }], 'queries over HTTP work');
  t.equal(accepted, 0, 'the port stays with its holder');
});

t.test('in a cluster (not --embedded): fails at once, naming the port and --pg-port', async (t) => {
  const started = Date.now();
  const r = await featherman(['serve', '--host', '127.0.0.1', '--port', '0', '--hooks-port', '0', '--pg-port', String(held)], {
    FEATHERMAN_LOG_LEVEL: 'warn',
  });
  t.not(r.code, 0);
  t.equal(r.json.ok, false);
  t.equal(r.json.error, `the Postgres port ${held} on 127.0.0.1 is in use (a local PostgreSQL?): choose another with --pg-port`);
  t.ok(Date.now() - started < 60_000, `exited in ${Date.now() - started} ms`);
});
