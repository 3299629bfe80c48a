// `npm run bench`: every benchmark, one after another, each printing its figures side by side.
import { quietSdkWarnings } from '../lib/warnings.js';

quietSdkWarnings();
const only = process.argv.slice(2);
const benches: Record<string, () => Promise<{ run: () => Promise<void> }>> = {
  lake: () => import('./lake.js'),
  backup: () => import('./backup.js'),
  pool: () => import('./pool.js'),
  hooks: () => import('./hooks.js'),
  admission: () => import('./admission.js'),
  auth: () => import('./auth.js'),
  pgwire: () => import('./pgwire.js'),
  metrics: () => import('./metrics.js'),
};
for (const [name, load] of Object.entries(benches)) {
  if (only.length && !only.includes(name)) continue;
  console.log(`\n=== ${name} ===`);
  await (await load()).run();
}
