// The Metacontroller hook contract (v2 hooks), as types and two small helpers.
// Metacontroller keys observed children "<Kind>.<group>/<version>" then
// "namespace/name"; the response is strict (no unknown top-level fields); status is replaced whole.

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  finalizers?: string[];
  ownerReferences?: unknown[];
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec?: unknown;
  status?: unknown;
  [key: string]: unknown;
}

export type ObjectMap = Record<string, Record<string, KubeObject>>;

export interface SyncRequest<P extends KubeObject = KubeObject> {
  /** The CompositeController; no hook reads it, and the route (lib/server/hooks.ts) does not require it. */
  controller?: Record<string, unknown>;
  parent: P;
  children: ObjectMap;
  related: ObjectMap;
  finalizing: boolean;
}

export interface SyncResponse {
  status: Record<string, unknown>;
  children: KubeObject[];
  resyncAfterSeconds?: number;
  finalized?: boolean;
}

export interface CustomizeRequest<P extends KubeObject = KubeObject> {
  controller?: Record<string, unknown>;
  parent: P;
}

export interface RelatedResourceRule {
  apiVersion: string;
  resource: string;
  namespace?: string;
  names?: string[];
  labelSelector?: { matchLabels?: Record<string, string> };
}

export interface CustomizeResponse {
  relatedResources: RelatedResourceRule[];
}

/** The outer key Metacontroller uses for a type: "Pod.v1", "Job.batch/v1". */
export function typeKey(kind: string, apiVersion: string): string {
  return `${kind}.${apiVersion}`;
}

/** Every object of one type from a children or related map. */
export function objectsOf<T extends KubeObject = KubeObject>(map: ObjectMap | undefined, kind: string, apiVersion: string): T[] {
  return Object.values(map?.[typeKey(kind, apiVersion)] ?? {}) as T[];
}

/** One object by namespace and name (v2 keys are "namespace/name"). */
export function objectNamed<T extends KubeObject = KubeObject>(
  map: ObjectMap | undefined,
  kind: string,
  apiVersion: string,
  namespace: string,
  name: string,
): T | undefined {
  return map?.[typeKey(kind, apiVersion)]?.[`${namespace}/${name}`] as T | undefined;
}
