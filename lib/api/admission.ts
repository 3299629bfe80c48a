// AdmissionReview (admission.k8s.io/v1) in and out, as plain functions; lib/server/admission.ts
// only routes HTTP to them. A malformed review is a 400 (the caller is broken); an invalid
// object is a 200 review with allowed: false, status.code 422 and every failing field listed.
import { defaultsPatch } from './defaults.js';
import { MAX_SPEC_DEPTH, structureProblem } from './limits.js';
import { GROUP, KIND_INFO, isKind, kindForResource, type Kind } from './schema.js';
import type { FieldProblem } from './table.js';
import { validateSpec } from './validate.js';

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';
export const OPERATIONS = ['CREATE', 'UPDATE', 'DELETE', 'CONNECT'] as const;

export interface AdmissionRequest {
  uid: string;
  kind: { group?: string; version?: string; kind: string };
  resource?: { group?: string; version?: string; resource?: string };
  name?: string;
  namespace?: string;
  operation: (typeof OPERATIONS)[number];
  object?: unknown;
  oldObject?: unknown;
  dryRun?: boolean;
}

export interface AdmissionStatus {
  status: 'Failure';
  code: number;
  reason: string;
  message: string;
  details?: { name?: string; group: string; kind: string; causes: { field: string; message: string; reason: string }[] };
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: AdmissionStatus;
  patch?: string;
  patchType?: 'JSONPatch';
  warnings?: string[];
}

export interface AdmissionReview {
  apiVersion: typeof ADMISSION_API_VERSION;
  kind: 'AdmissionReview';
  response: AdmissionResponse;
}

/** A review the webhook cannot answer: HTTP 400 with this message. */
export class MalformedReviewError extends Error {
  readonly statusCode = 400;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Checks the envelope and returns the request; throws MalformedReviewError naming what is wrong. */
export function parseReview(body: unknown): AdmissionRequest {
  const bad = (message: string): never => {
    throw new MalformedReviewError(message);
  };
  if (!isObj(body)) return bad('the body must be a JSON AdmissionReview object');
  if (body.apiVersion !== ADMISSION_API_VERSION)
    return bad(`apiVersion must be ${ADMISSION_API_VERSION}, got ${JSON.stringify(body.apiVersion ?? null)}`);
  if (body.kind !== 'AdmissionReview') return bad(`kind must be AdmissionReview, got ${JSON.stringify(body.kind ?? null)}`);
  const r = body.request;
  if (!isObj(r)) return bad('request is missing');
  if (typeof r.uid !== 'string' || r.uid === '') return bad('request.uid must be a non-empty string');
  if (!OPERATIONS.includes(r.operation as never)) return bad(`request.operation must be one of ${OPERATIONS.join(', ')}`);
  if (!isObj(r.kind) || typeof r.kind.kind !== 'string') return bad('request.kind.kind must be a string');
  if ((r.operation === 'CREATE' || r.operation === 'UPDATE') && !isObj(r.object))
    return bad(`request.object must be an object for ${r.operation}`);
  if (r.operation === 'UPDATE' && !isObj(r.oldObject)) return bad('request.oldObject must be an object for UPDATE');
  return r as unknown as AdmissionRequest;
}

function kindOf(request: AdmissionRequest): Kind | undefined {
  if (request.kind.group !== undefined && request.kind.group !== GROUP) return undefined;
  if (isKind(request.kind.kind)) return request.kind.kind;
  return request.resource?.resource ? kindForResource(request.resource.resource) : undefined;
}

const allow = (uid: string, extra: Partial<AdmissionResponse> = {}): AdmissionResponse => ({ uid, allowed: true, ...extra });
const review = (response: AdmissionResponse): AdmissionReview => ({ apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response });

/**
 * Whether an UPDATE left the spec alone: metadata-only updates (finalizers, labels) are let through,
 * so an object that no longer validates can still be labelled or have its finalizer removed. An
 * object being deleted gets no other exception: a spec change then meets every rule, immutability
 * included. A spec too deep to compare is left to validateSpec, which names it.
 */
function onlyMetadataChanged(request: AdmissionRequest): boolean {
  if (request.operation !== 'UPDATE') return false;
  const spec = (request.object as Obj).spec;
  const old = (request.oldObject as Obj).spec;
  if (structureProblem(spec, MAX_SPEC_DEPTH) || structureProblem(old, MAX_SPEC_DEPTH)) return false;
  return JSON.stringify(spec) === JSON.stringify(old);
}

export function denial(kind: Kind, name: string | undefined, problems: FieldProblem[]): AdmissionStatus {
  const list = problems.map((p) => `${p.field}: ${p.message}`).join('; ');
  return {
    status: 'Failure',
    code: 422,
    reason: 'Invalid',
    message: `${kind} ${JSON.stringify(name ?? '')} is invalid: ${list}`,
    details: {
      ...(name ? { name } : {}),
      group: GROUP,
      kind: KIND_INFO[kind].plural,
      causes: problems.map((p) => ({ field: p.field, message: p.message, reason: 'FieldValueInvalid' })),
    },
  };
}

function nameOf(request: AdmissionRequest): string | undefined {
  const meta = isObj(request.object) ? request.object.metadata : isObj(request.oldObject) ? request.oldObject.metadata : undefined;
  const name = isObj(meta) ? (meta.name ?? meta.generateName) : undefined;
  return typeof name === 'string' ? name : request.name;
}

/** POST /admission/validate */
export function validateReview(body: unknown): AdmissionReview {
  const request = parseReview(body);
  const kind = kindOf(request);
  if (!kind || request.operation === 'DELETE' || request.operation === 'CONNECT' || onlyMetadataChanged(request)) {
    return review(allow(request.uid));
  }
  const object = request.object as Obj;
  const old = request.operation === 'UPDATE' ? (request.oldObject as Obj).spec : undefined;
  const { problems, warnings } = validateSpec(kind, object.spec, old);
  const extra = warnings.length ? { warnings } : {};
  if (problems.length === 0) return review(allow(request.uid, extra));
  return review({ uid: request.uid, allowed: false, status: denial(kind, nameOf(request), problems), ...extra });
}

/** POST /admission/mutate */
export function mutateReview(body: unknown): AdmissionReview {
  const request = parseReview(body);
  const kind = kindOf(request);
  if (!kind || (request.operation !== 'CREATE' && request.operation !== 'UPDATE')) return review(allow(request.uid));
  const object = request.object as Obj;
  // Defaults walk the spec; one past the structure limits gets none, and the validating webhook refuses it.
  if (structureProblem(object.spec, MAX_SPEC_DEPTH)) return review(allow(request.uid));
  const meta = isObj(object.metadata) ? object.metadata : {};
  const { patch, warnings } = defaultsPatch(kind, object, {
    operation: request.operation,
    name: typeof meta.name === 'string' ? meta.name : undefined,
    namespace: typeof meta.namespace === 'string' ? meta.namespace : request.namespace,
  });
  const extra: Partial<AdmissionResponse> = warnings.length ? { warnings } : {};
  if (patch.length) Object.assign(extra, { patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') });
  return review(allow(request.uid, extra));
}
