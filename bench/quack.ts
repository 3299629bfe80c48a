// The peer to beat, for bench/pool.ts: DuckDB's own client-server protocol, Quack. One DuckDB
// process (Python) loads the `quack` extension of the pinned DuckDB version, attaches the same
// lake (a copy of its catalog, as a worker does) and serves it over loopback; a Python client
// sends each query with quack_query() and times it. Needs Python's duckdb at the pinned version
// and the quack extension from its PyPI wheel: bench/quack-setup.sh installs both into
// $FEATHERMAN_CACHE. Without them the bench says "quack: not available" and why.
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { loadConfig, packageRoot } from '../lib/lake/config.js';

export interface QuackFigures {
  /** Latencies in ms, per query label. */
  latencies: Record<string, number[]>;
}

/** The pinned DuckDB version (.ci/versions.env). */
export function pinnedDuckDB(): string {
  const text = readFileSync(join(packageRoot(), '.ci', 'versions.env'), 'utf8');
  const m = /^DUCKDB_VERSION=(\S+)/m.exec(text);
  if (!m) throw new Error('.ci/versions.env has no DUCKDB_VERSION');
  return m[1]!;
}

const cache = () => process.env.FEATHERMAN_CACHE ?? join(process.env.HOME ?? '/tmp', '.cache', 'featherman');

/** A Python whose duckdb is the pinned version, or why there is none. */
function python(version: string): { python: string } | { missing: string } {
  const candidates = [process.env.BENCH_QUACK_PYTHON, join(cache(), 'quack-venv', 'bin', 'python'), 'python3'].filter(
    (p): p is string => !!p,
  );
  for (const p of candidates) {
    const r = spawnSync(p, ['-c', 'import duckdb; print(duckdb.__version__)'], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim() === version) return { python: p };
  }
  return { missing: `no Python with duckdb ${version} (run bench/quack-setup.sh)` };
}

/** The quack extension file for `version`, from the extension directory or its wheel, or why there is none. */
function extension(version: string, extensionDirectory: string, work: string): { file: string } | { missing: string } {
  const dir = join(extensionDirectory, `v${version}`);
  if (existsSync(dir)) {
    for (const platform of readdirSync(dir)) {
      const file = join(dir, platform, 'quack.duckdb_extension');
      if (existsSync(file)) return { file };
    }
  }
  const wheels = join(cache(), 'wheels');
  const wheel = existsSync(wheels)
    ? readdirSync(wheels).find((f) => f.startsWith(`duckdb_extension_quack-${version}-`) && f.endsWith('.whl'))
    : undefined;
  if (!wheel)
    return { missing: `no quack extension for DuckDB ${version} (PyPI: duckdb-extension-quack==${version}; run bench/quack-setup.sh)` };
  const file = join(work, 'quack.duckdb_extension');
  const r = spawnSync(
    'python3',
    [
      '-c',
      `import zipfile,sys\nwith zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2],'wb') as o: ` +
        `o.write(z.read('duckdb_extension_quack/extensions/v${version}/quack.duckdb_extension'))`,
      join(wheels, wheel),
      file,
    ],
    { encoding: 'utf8' },
  );
  return r.status === 0 ? { file } : { missing: `the quack wheel could not be read: ${r.stderr.trim()}` };
}

// The server: the lake attached as in a worker (read-only, from a copy), served by quack_serve.
const SERVER = String.raw`
import duckdb, json, sys
cfg = json.loads(sys.stdin.readline())
db = duckdb.connect(config={'extension_directory': cfg['extdir'],
                            'autoinstall_known_extensions': False, 'autoload_known_extensions': False})
db.execute("LOAD httpfs"); db.execute("LOAD ducklake"); db.execute("LOAD '%s'" % cfg['quack'])
lit = lambda v: "'" + str(v).replace("'", "''") + "'"
db.execute("CREATE TEMPORARY SECRET s3 (TYPE s3, KEY_ID %s, SECRET %s, REGION %s, ENDPOINT %s, URL_STYLE %s, USE_SSL %s)"
           % (lit(cfg['key']), lit(cfg['secret']), lit(cfg['region']), lit(cfg['endpoint']), lit(cfg['urlStyle']), cfg['useSsl']))
db.execute("ATTACH 'ducklake:duckdb:%s' AS lake (DATA_PATH '%s', READ_ONLY)" % (cfg['catalog'], cfg['data']))
db.execute("USE lake")
db.execute("CALL quack_serve('quack:127.0.0.1:%d', token = '%s', disable_ssl = true)" % (cfg['port'], cfg['token']))
print(json.dumps({'listening': cfg['port']}), flush=True)
sys.stdin.read()
`;

// The client: each query is one quack_query() round trip; warm-up first, then timed runs.
const CLIENT = String.raw`
import duckdb, json, sys, time
cfg = json.loads(sys.stdin.readline())
db = duckdb.connect(config={'extension_directory': cfg['extdir'],
                            'autoinstall_known_extensions': False, 'autoload_known_extensions': False})
db.execute("LOAD httpfs"); db.execute("LOAD '%s'" % cfg['quack'])
uri = 'quack:127.0.0.1:%d' % cfg['port']
lit = lambda v: "'" + str(v).replace("'", "''") + "'"
out = {}
for label, sql in cfg['queries'].items():
    # Literals, not parameters: a table function's arguments must be constant when it binds.
    q = "SELECT * FROM quack_query(%s, %s, token = %s, disable_ssl = true)" % (lit(uri), lit(sql), lit(cfg['token']))
    for _ in range(cfg['warmup']): db.execute(q).fetchall()
    times = []
    for _ in range(cfg['runs']):
        t0 = time.perf_counter(); db.execute(q).fetchall(); times.append((time.perf_counter() - t0) * 1000)
    out[label] = times
print(json.dumps(out), flush=True)
`;

/** Quack's latencies for `queries` on the lake described by `env`, or why it cannot run here. */
export async function runQuack(
  env: Record<string, string>,
  queries: Record<string, string>,
  runs: number,
  port: number,
  warmup = 20,
): Promise<QuackFigures | { missing: string }> {
  const version = pinnedDuckDB();
  const config = loadConfig(env);
  if (config.metadata.type !== 'duckdb') return { missing: 'the Quack bench reads a DuckDB catalog file' };
  const py = python(version);
  if ('missing' in py) return py;
  const work = mkdtempSync(join(tmpdir(), 'fm-quack-'));
  const ext = extension(version, config.extensionDirectory, work);
  if ('missing' in ext) {
    rmSync(work, { recursive: true, force: true });
    return ext;
  }
  const catalog = join(work, 'catalog.ducklake');
  copyFileSync(config.metadata.path, catalog);
  const token = 'bench-quack-token';
  const common = { extdir: config.extensionDirectory, quack: ext.file, port, token };
  const server = spawn(py.python, ['-c', SERVER], { stdio: ['pipe', 'pipe', 'pipe'] });
  let serverErr = '';
  server.stderr!.on('data', (d) => {
    serverErr += String(d);
  });
  try {
    server.stdin!.write(
      `${JSON.stringify({
        ...common,
        catalog,
        data: config.dataPath,
        key: config.s3.accessKeyId ?? '',
        secret: config.s3.secretAccessKey ?? '',
        region: config.s3.region,
        endpoint: config.s3.endpoint ?? '',
        urlStyle: config.s3.urlStyle,
        useSsl: String(config.s3.useSsl),
      })}\n`,
    );
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: server.stdout! }).once('line', () => resolve());
      server.once('exit', (code) => reject(new Error(`the Quack server exited with ${code}: ${serverErr.trim().split('\n').pop()}`)));
    });
    const client = spawnSync(py.python, ['-c', CLIENT], {
      input: `${JSON.stringify({ ...common, queries, runs, warmup })}\n`,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
    if (client.status !== 0)
      return {
        missing: `the Quack client failed: ${
          client.stderr
            .split('\n')
            .filter((l) => /Error/.test(l))
            .pop() ?? client.stderr.trim()
        }`,
      };
    return { latencies: JSON.parse(client.stdout) as Record<string, number[]> };
  } catch (err) {
    return { missing: (err as Error).message };
  } finally {
    server.kill('SIGTERM');
    rmSync(work, { recursive: true, force: true });
  }
}
