// `featherman certs` writes a CA and a serving certificate; `featherman serve` uses them for
// HTTPS, answers curl over real TLS, and picks up a new certificate when its Secret volume is
// updated the way the kubelet does it (a new directory, then an atomic swap of the ..data link).
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { featherman } from '../helpers/cli.js';
import { ON_LOOPBACK, startServe, withTls } from '../helpers/serve.js';
import { readmeFixture, review } from '../helpers/admission.js';

const dir = t.testdir({});

t.test('featherman certs', async (t) => {
  const res = await featherman(['certs', '--out', join(dir, 'a'), '--dns', 'localhost', '--ip', '127.0.0.1'], {});
  t.equal(res.code, 0, res.stderr);
  t.match(res.json, {
    ok: true,
    command: 'certs',
    caReused: false,
    dnsNames: ['featherman', 'featherman.featherman', 'featherman.featherman.svc', 'featherman.featherman.svc.cluster.local', 'localhost'],
    ipAddresses: ['127.0.0.1'],
  });
  const ca = new X509Certificate(readFileSync(join(dir, 'a', 'ca.crt')));
  const leaf = new X509Certificate(readFileSync(join(dir, 'a', 'tls.crt')));
  t.equal(ca.ca, true, 'ca.crt is a CA');
  t.equal(leaf.ca, false, 'tls.crt is not');
  t.ok(leaf.verify(ca.publicKey), 'tls.crt is signed by ca.crt');
  t.ok(leaf.checkIssued(ca), 'and issued by it');
  t.equal(leaf.checkHost('featherman.featherman.svc'), 'featherman.featherman.svc', 'valid for the Service name the API server calls');
  t.equal(leaf.checkIP('127.0.0.1'), '127.0.0.1');
  t.equal(leaf.checkHost('evil.example.com'), undefined);
  t.ok(leaf.keyUsage?.includes('1.3.6.1.5.5.7.3.1'), 'extended key usage serverAuth');
  t.equal(
    readFileSync(join(dir, 'a', 'caBundle'), 'utf8'),
    readFileSync(join(dir, 'a', 'ca.crt')).toString('base64'),
    'caBundle is base64 of ca.crt',
  );
  t.equal(statSync(join(dir, 'a', 'tls.key')).mode & 0o777, 0o600, 'tls.key is private');
  t.equal(statSync(join(dir, 'a', 'ca.key')).mode & 0o777, 0o600, 'ca.key is private');
  const hooks = readFileSync(join(dir, 'a', 'webhooks.yaml'), 'utf8');
  t.equal(
    hooks.split(`caBundle: ${readFileSync(join(dir, 'a', 'caBundle'), 'utf8')}`).length,
    3,
    'webhooks.yaml carries the caBundle in both configurations',
  );
  t.notMatch(hooks, /inject-ca-from/, 'and no cert-manager annotation');
  const openssl = execFileSync('openssl', ['verify', '-CAfile', join(dir, 'a', 'ca.crt'), join(dir, 'a', 'tls.crt')]).toString();
  t.match(openssl, /tls.crt: OK/, 'openssl agrees');

  const again = await featherman(['certs', '--out', join(dir, 'a'), '--dns', 'localhost', '--ip', '127.0.0.1'], {});
  t.equal(again.json.caReused, true, 'a second run keeps the CA');
  t.equal(again.json.caFingerprint, res.json.caFingerprint, 'so the caBundle stays valid');
  t.not(readFileSync(join(dir, 'a', 'tls.crt'), 'utf8'), leaf.toString(), 'while the serving certificate is new');

  const missing = await featherman(['certs'], {});
  t.equal(missing.code, 2);
  t.match(missing.json.error, /--out: required/);
  const help = await featherman(['certs', '--help'], {});
  t.match(help.stdout, /kubectl -n NS create secret tls featherman-webhook-tls/);
});

/** A Secret volume as the kubelet lays it out: tls.crt -> ..data/tls.crt, ..data -> a timestamped directory. */
function projectSecret(volume: string, from: string, version: string) {
  const target = join(volume, `..${version}`);
  mkdirSync(target, { recursive: true });
  for (const f of ['tls.crt', 'tls.key']) cpSync(join(from, f), join(target, f));
  symlinkSync(`..${version}`, join(volume, '..data_tmp'));
  renameSync(join(volume, '..data_tmp'), join(volume, '..data'));
}

// curl's --max-time only catches a hang; a loaded machine may take seconds for a handshake.
function curl(args: string[]): { code: number; out: string } {
  try {
    return { code: 0, out: execFileSync('curl', ['-sS', '--max-time', '60', ...args], { stdio: ['ignore', 'pipe', 'pipe'] }).toString() };
  } catch (err) {
    const e = err as { status: number; stderr: Buffer };
    return { code: e.status, out: e.stderr.toString() };
  }
}

t.test('featherman serve on three listeners, admission only over HTTPS, with certificate reload', async (t) => {
  await featherman(['certs', '--out', join(dir, 'b'), '--dns', 'localhost', '--ip', '127.0.0.1', '--new-ca'], {});
  const volume = join(dir, 'volume');
  mkdirSync(volume);
  projectSecret(volume, join(dir, 'a'), 'v1');
  symlinkSync('..data/tls.crt', join(volume, 'tls.crt'));
  symlinkSync('..data/tls.key', join(volume, 'tls.key'));

  const serve = await startServe([...ON_LOOPBACK, ...withTls(volume)]);
  t.teardown(() => {
    serve.child.kill('SIGKILL');
  });
  const log = () => serve.lines().join('\n');
  const listening = { ...serve.ports, httpsPort: serve.ports.httpsPort! };

  const body = join(dir, 'review.json');
  writeFileSync(body, JSON.stringify(review('CREATE', readmeFixture('table'), undefined, 'tls-uid')));
  const post = ['-X', 'POST', '-H', 'Content-Type: application/json', '--data-binary', `@${body}`];
  const https = `https://localhost:${listening.httpsPort}/admission/validate`;

  const res = curl([...post, '--cacert', join(dir, 'a', 'ca.crt'), https]);
  t.equal(res.code, 0, `curl over TLS succeeds: ${res.out}`);
  const answer = JSON.parse(res.out);
  t.equal(answer.response.uid, 'tls-uid');
  t.equal(answer.response.allowed, false);
  t.match(
    answer.response.status.message,
    /spec\.format\.partitioning\[0\]: partition column "created_at" is not one of the table's columns/,
  );

  t.equal(new Set([listening.httpPort, listening.hooksPort, listening.httpsPort]).size, 3, `three ports: ${JSON.stringify(listening)}`);
  const status = (url: string, data = 'not json') =>
    curl(['-X', 'POST', '-H', 'Content-Type: application/json', '--data-binary', data, '-w', '%{http_code}', '-o', '/dev/null', url]).out;
  t.equal(
    curl([
      '-X',
      'POST',
      '-H',
      'Content-Type: application/json',
      '--data-binary',
      'not json',
      '-w',
      '%{http_code}',
      '-o',
      '/dev/null',
      '--cacert',
      join(dir, 'a', 'ca.crt'),
      https,
    ]).out,
    '400',
    'over HTTPS a broken review is a 400',
  );
  for (const port of [listening.httpPort, listening.hooksPort]) {
    t.equal(
      status(`http://127.0.0.1:${port}/admission/validate`),
      '404',
      `no admission on plain HTTP port ${port === listening.httpPort ? 'http' : 'hooks'}`,
    );
  }
  t.equal(status(`http://127.0.0.1:${listening.httpPort}/hooks/ducklaketables/sync`, '{}'), '404', 'no hooks on the query port');
  t.equal(status(`http://127.0.0.1:${listening.hooksPort}/hooks/ducklaketables/sync`, '{}'), '400', 'the hooks on the hooks port');
  t.equal(status(`http://127.0.0.1:${listening.hooksPort}/v1/query`, '{}'), '404', 'no query API on the hooks port');
  t.equal(
    status(`http://127.0.0.1:${listening.httpPort}/v1/query?token=canary-token-in-url`, '{}'),
    '401',
    'the query API on the query port',
  );
  t.equal(status(`http://127.0.0.1:${listening.httpPort}/nothing?token=canary-token-in-url`, '{}'), '404');
  for (const port of [listening.httpPort, listening.hooksPort]) {
    t.equal(
      curl([`http://127.0.0.1:${port}/readyz`]).out,
      '{"status":"ok","checks":{"hooks":"ok","tls":"ok"}}',
      'every listener reports them all ready',
    );
  }
  t.equal(
    curl(['--cacert', join(dir, 'a', 'ca.crt'), `https://localhost:${listening.httpsPort}/healthz`]).out,
    '{"status":"ok"}',
    'and /healthz answers over HTTPS',
  );
  t.not(curl([...post, '--cacert', join(dir, 'b', 'ca.crt'), https]).code, 0, 'the other CA is not trusted yet');

  t.notMatch(log(), /TLS certificate reloaded/, 'nothing reloaded before the Secret changes');
  projectSecret(volume, join(dir, 'b'), 'v2');
  // The event: serve says it reloaded (on the directory's change, or its poll).
  await serve.line('TLS certificate reloaded');
  t.equal(curl([...post, '--cacert', join(dir, 'b', 'ca.crt'), https]).code, 0, 'after the Secret update, the new certificate is served');
  t.not(curl([...post, '--cacert', join(dir, 'a', 'ca.crt'), https]).code, 0, 'and the old one no longer');

  // 'close': the log is read whole after the exit.
  const exited = new Promise<number | null>((resolve) => serve.child.once('close', (code) => resolve(code)));
  serve.child.kill('SIGTERM');
  t.equal(await exited, 0, 'SIGTERM shuts down cleanly');
  t.match(log(), /TLS certificate reloaded/);
  t.match(log(), /"uid":"tls-uid".*"allowed":false/, 'the decision is logged');
  t.notMatch(log(), /VARCHAR|catalogRef|"columns"/, 'the request body is not');
  t.match(log(), /"url":"\/v1\/query"/, 'requests are logged by path');
  t.notMatch(log(), /canary-token-in-url/, 'without their query strings');
  t.match(log(), /"hooksPort":\d+/, 'the listening line names the hooks port');
});

t.test('serve refuses half a TLS configuration', async (t) => {
  const res = await featherman(['serve', '--tls-port', '8443'], {});
  t.equal(res.code, 2);
  t.match(res.json.error, /--tls-port, --tls-cert and --tls-key go together/);
  const port = await featherman(['serve', '--port', 'http'], {});
  t.match(port.json.error, /--port: must be a port number/);
  const hooksPort = await featherman(['serve', '--hooks-port', '70000'], {});
  t.equal(hooksPort.code, 2);
  t.match(hooksPort.json.error, /--hooks-port: must be a port number \(0-65535\), got "70000"/);
  t.match((await featherman(['serve', '--help'], {})).stdout, /--hooks-port N {4}the Metacontroller hooks/);
});

t.test('serve refuses settings its children would carry wrong, naming the variable', async (t) => {
  const cases: [Record<string, string>, RegExp][] = [
    [
      { FEATHERMAN_IMAGE_PULL_POLICY: 'Sometimes' },
      /^FEATHERMAN_IMAGE_PULL_POLICY: must be Always, IfNotPresent or Never, got "Sometimes"$/,
    ],
    [{ FEATHERMAN_RUNNER_MEMORY_LIMIT: '2GB' }, /^FEATHERMAN_RUNNER_MEMORY_LIMIT: must be a Kubernetes resource quantity .*got "2GB"$/],
    [{ FEATHERMAN_RUNNER_CPU_REQUEST: '-1' }, /^FEATHERMAN_RUNNER_CPU_REQUEST: must be a Kubernetes resource quantity/],
    [{ FEATHERMAN_LOCAL_WORKERS: 'many' }, /^FEATHERMAN_LOCAL_WORKERS: must be a whole number from 0 to 16, got "many"$/],
  ];
  for (const [env, message] of cases) {
    const res = await featherman(['serve', '--port', '0', '--hooks-port', '0'], env);
    t.equal(res.code, 2, JSON.stringify(env));
    t.match(res.json.error, message);
  }
});
