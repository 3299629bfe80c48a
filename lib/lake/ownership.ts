// One catalog per data path. Two catalogs sharing one would each take the other's files for
// orphans and delete them during maintenance, so `catalog init` and `restore` record the owner in
// a marker object beside the data folder (never inside it: DuckLake's orphan deletion lists the
// data path) and refuse a data path another catalog owns.
import { BadInputError } from '../errors.js';
import type { LakeConfig } from './config.js';
import { blobStore } from './storage.js';

export const MARKER_SUFFIX = '.featherman-owner.json';

interface Marker {
  catalog: string;
  dataPath: string;
  createdAt: string;
}

/** The marker's store root and key: s3://b/p/data/ -> (s3://b/p/, data.featherman-owner.json); a bucket root keeps it inside. */
export function markerLocation(dataPath: string): { root: string; key: string } {
  const trimmed = dataPath.replace(/\/+$/, '');
  const cut = trimmed.lastIndexOf('/');
  const parent = trimmed.slice(0, cut + 1);
  if (cut <= 0 || parent === 's3://') return { root: dataPath, key: MARKER_SUFFIX.slice(1) };
  return { root: parent, key: `${trimmed.slice(cut + 1)}${MARKER_SUFFIX}` };
}

/** Claim the data path for config.catalogId, or fail (exit 2) naming the catalog that owns it. */
export async function claimDataPath(config: LakeConfig): Promise<{ owner: string; claimed: boolean }> {
  const { root, key } = markerLocation(config.dataPath);
  const store = blobStore(config.s3, root);
  const read = async () => {
    const body = await store.getIfExists(key);
    return body ? (JSON.parse(body.toString('utf8')) as Marker) : undefined;
  };
  const refuse = (owner: string) =>
    new BadInputError(
      `FEATHERMAN_DATA_PATH: ${config.dataPath} belongs to catalog ${owner} (marker ${root}${key}); ` +
        `two catalogs on one data path would delete each other's files: give catalog ${config.catalogId} its own bucket or prefix`,
    );
  const existing = await read();
  if (existing) {
    if (existing.catalog !== config.catalogId) throw refuse(existing.catalog);
    return { owner: existing.catalog, claimed: false };
  }
  const marker: Marker = { catalog: config.catalogId, dataPath: config.dataPath, createdAt: new Date().toISOString() };
  await store.put(key, JSON.stringify(marker, null, 2) + '\n');
  // Two catalogs created at the same moment: the last write wins the marker, and the other one sees it here.
  const after = await read();
  if (after && after.catalog !== config.catalogId) throw refuse(after.catalog);
  return { owner: config.catalogId, claimed: true };
}
