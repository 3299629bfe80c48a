// Which controller drives the e2e hooks (test/helpers/metacontroller.ts): the real Metacontroller
// when its folder is beside the checkout (or FEATHERMAN_METACONTROLLER_DIR names one), the stand-in
// otherwise; and the installed CompositeControllers with their hooks pointed at the service under test.
import t from 'tap';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../lib/lake/config.js';
import { chooseMetacontroller, clusterBinDir, metacontrollerDir } from '../helpers/cluster.js';
import { localControllers } from '../helpers/metacontroller.js';

const saved = process.env.FEATHERMAN_METACONTROLLER_DIR;
t.teardown(() => {
  if (saved === undefined) delete process.env.FEATHERMAN_METACONTROLLER_DIR;
  else process.env.FEATHERMAN_METACONTROLLER_DIR = saved;
});

t.test('without the folder: the stand-in, and the reason names the folder', async (t) => {
  const empty = mkdtempSync(join(tmpdir(), 'fm-no-mc-'));
  t.teardown(() => rmSync(empty, { recursive: true, force: true }));
  process.env.FEATHERMAN_METACONTROLLER_DIR = join(empty, 'metacontroller');
  t.equal(metacontrollerDir(), join(empty, 'metacontroller'));
  t.same(chooseMetacontroller(), { kind: 'stand-in', reason: `no Metacontroller binary in ${join(empty, 'metacontroller')}` });
});

t.test('the default folder is ../shared/tools/metacontroller beside the checkout', async (t) => {
  delete process.env.FEATHERMAN_METACONTROLLER_DIR;
  t.equal(metacontrollerDir(), join(packageRoot(), '..', 'shared', 'tools', 'metacontroller'));
});

const real = join(packageRoot(), '..', 'shared', 'tools', 'metacontroller', 'metacontroller');
t.test(
  'with the folder: the real controller, as .ci/setup test checked and copied it',
  { skip: existsSync(real) ? false : `no ${real} on this machine` },
  async (t) => {
    delete process.env.FEATHERMAN_METACONTROLLER_DIR;
    const choice = chooseMetacontroller();
    t.same(choice, {
      kind: 'metacontroller',
      binary: join(clusterBinDir(), 'metacontroller'),
      crds: join(clusterBinDir(), 'metacontroller-crds-v1.yaml'),
      version: 'v4.17.2',
    });
  },
);

t.test('the CompositeControllers, with every hook on the service under test', async (t) => {
  const docs = localControllers(join(packageRoot(), 'metacontroller', 'controllers.yaml'), 'http://127.0.0.1:45678/');
  t.same(docs.map((d) => d.metadata.name).sort(), [
    'ducklakebackups.featherman',
    'ducklakecatalogs.featherman',
    'ducklakepools.featherman',
    'ducklaketables.featherman',
  ]);
  for (const d of docs) {
    const plural = d.metadata.name.split('.')[0];
    for (const hook of ['sync', 'finalize', 'customize']) {
      const w = d.spec.hooks[hook]?.webhook;
      t.equal(w?.url, `http://127.0.0.1:45678/hooks/${plural}/${hook}`, `${d.metadata.name} ${hook}`);
      t.notOk(w && ('service' in w || 'path' in w), 'no service or path left');
    }
  }
});
