// Golden files: a hook response compared with test/golden/<name>.json; UPDATE_GOLDEN=1 rewrites them.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import { packageRoot } from '../../lib/lake/config.js';

const GOLDEN = join(packageRoot(), 'test', 'golden');

export function golden(t: Test, name: string, response: unknown): void {
  const file = join(GOLDEN, `${name}.json`);
  const text = JSON.stringify(response, null, 2) + '\n';
  if (process.env.UPDATE_GOLDEN || !existsSync(file)) {
    mkdirSync(GOLDEN, { recursive: true });
    writeFileSync(file, text);
    if (!process.env.UPDATE_GOLDEN) t.fail(`${name}.json did not exist; written now, review and commit it`);
  }
  t.same(JSON.parse(text), JSON.parse(readFileSync(file, 'utf8')), `matches test/golden/${name}.json`);
}
