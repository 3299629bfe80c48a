// The README's commands are run as written: the local walkthrough block verbatim in bash.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../lib/lake/config.js';

const root = packageRoot();
const readme = readFileSync(join(root, 'README.md'), 'utf8');

function bashBlockAfter(heading: string): string {
  const at = readme.indexOf(`\n## ${heading}\n`);
  if (at < 0) throw new Error(`README has no "## ${heading}" section`);
  const m = /```bash\n([\s\S]*?)```/.exec(readme.slice(at));
  if (!m) throw new Error(`no bash block under ${heading}`);
  return m[1]!;
}

t.test('the local walkthrough runs verbatim and prints the two users', async (t) => {
  const script = bashBlockAfter('Local walkthrough');
  const r = spawnSync('bash', ['-euo', 'pipefail', '-c', script], {
    cwd: root,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: process.env.HOME, npm_config_update_notifier: 'false' },
    timeout: 120_000,
  });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^id,name\n1,Ada\n2,Grace\n/m);
  const info = JSON.parse(r.stdout.trim().split('\n').pop()!);
  t.match(info, { ok: true, command: 'catalog info', ducklakeVersion: '1.0', tables: [{ name: 'users', rows: 2 }] });
});

t.test('the README names the two set-up commands that package.json defines', async (t) => {
  const block = bashBlockAfter('Two commands');
  t.match(block, /^npm start\b/m);
  t.match(block, /^npm test\b/m);
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  t.match(pkg.scripts.prestart, /\.ci\/setup runtime/);
  t.match(pkg.scripts.pretest, /\.ci\/setup test/);
  t.match(readFileSync(join(root, '.ci', 'run'), 'utf8'), /^npm test$/m, '.ci/run calls the README test command');
});

t.test("the README's table of listeners matches `featherman serve` and the install manifests", async (t) => {
  const { SERVE_USAGE } = await import('../lib/server/serve.js');
  const rows = [...readme.matchAll(/^\| `(--[a-z-]+)` \| (\w+) \| ([^|]+) \|/gm)].map((m) => ({
    flag: m[1]!,
    fallback: m[2]!,
    serves: m[3]!.trim(),
  }));
  t.same(
    rows.map((r) => r.flag),
    ['--port', '--hooks-port', '--tls-port'],
  );
  for (const r of rows) {
    const usage = SERVE_USAGE.split('\n').find((l) => l.trim().startsWith(`${r.flag} `));
    t.ok(usage, `${r.flag} is in the usage`);
    if (r.fallback === 'none') t.notMatch(usage!, /default/, `${r.flag} has no default`);
    else t.match(usage!, new RegExp(`default ${r.fallback}\\b`), `${r.flag} defaults to ${r.fallback}`);
  }
  const service = readFileSync(join(root, 'metacontroller', 'service.yaml'), 'utf8');
  t.match(service, /"--port", "8080", "--hooks-port", "8081", "--tls-port", "8443"/, 'the Deployment passes the flags the README names');
  t.match(readme, /metacontroller\/network-policy\.yaml/);
  t.match(
    readFileSync(join(root, 'metacontroller', 'kustomization.yaml'), 'utf8'),
    /^ {2}- network-policy\.yaml$/m,
    'and installs the NetworkPolicy',
  );
});
