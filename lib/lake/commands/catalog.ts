// `featherman catalog init|info`
import { BadInputError } from '../../errors.js';
import { loadConfig } from '../config.js';
import { lakeReport, summarizeLake } from '../inspect.js';
import { openLake } from '../session.js';
import { claimDataPath } from '../ownership.js';
import { checkStorage } from '../storage.js';
import { parse } from './args.js';

export async function catalogCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { positionals } = parse(argv, {}, true);
  const [action, ...extra] = positionals;
  if (extra.length) throw new BadInputError(`catalog: unexpected argument ${JSON.stringify(extra[0])}`);
  const config = loadConfig(env);
  if (action === 'init') {
    await checkStorage(config);
    const { claimed } = await claimDataPath(config);
    const session = await openLake(config, { create: true });
    try {
      const summary = await summarizeLake(session);
      if (summary.encrypted !== config.encrypted) {
        throw new BadInputError(
          `FEATHERMAN_ENCRYPTED: the lake already exists with encryption ${summary.encrypted ? 'on' : 'off'}; it cannot be changed`,
        );
      }
      return {
        command: 'catalog init',
        catalog: config.catalogName,
        owner: config.catalogId,
        dataPathClaimed: claimed,
        metadataType: config.metadata.type,
        ...summary,
        lake: lakeReport(summary),
      };
    } finally {
      session.close();
    }
  }
  if (action === 'info') {
    const session = await openLake(config, { readOnly: true });
    try {
      const summary = await summarizeLake(session);
      return {
        command: 'catalog info',
        catalog: config.catalogName,
        metadataType: config.metadata.type,
        ...summary,
        lake: lakeReport(summary),
      };
    } finally {
      session.close();
    }
  }
  throw new BadInputError('catalog: expected `init` or `info`');
}
