// The admission webhooks: POST /admission/validate and /admission/mutate, served only on the TLS
// listener. The rules are plain functions in lib/api/admission.ts; this plugin routes and logs
// decisions (never bodies).
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { mutateReview, validateReview, type AdmissionReview } from '../api/admission.js';
import { WEBHOOK_PATHS } from '../api/crds.js';
import { precompile } from '../api/schema-validator.js';

// Objects are at most ~1.5 MiB in etcd; a review carries the object and the old object.
const BODY_LIMIT = 8 * 1024 * 1024;

const causes = {
  type: 'array',
  items: { type: 'object', properties: { field: { type: 'string' }, message: { type: 'string' }, reason: { type: 'string' } } },
};
const reviewReply = {
  type: 'object',
  properties: {
    apiVersion: { type: 'string' },
    kind: { type: 'string' },
    response: {
      type: 'object',
      properties: {
        uid: { type: 'string' },
        allowed: { type: 'boolean' },
        status: {
          type: 'object',
          properties: {
            status: { type: 'string' },
            code: { type: 'integer' },
            reason: { type: 'string' },
            message: { type: 'string' },
            details: {
              type: 'object',
              properties: { name: { type: 'string' }, group: { type: 'string' }, kind: { type: 'string' }, causes },
            },
          },
        },
        patch: { type: 'string' },
        patchType: { type: 'string' },
        warnings: { type: 'array', items: { type: 'string' } },
      },
    },
  },
};
const errorReply = {
  type: 'object',
  properties: { statusCode: { type: 'integer' }, error: { type: 'string' }, message: { type: 'string' } },
};
// The envelope is checked in parseReview() with messages that name the field; the route schema
// only documents it (and must not coerce or strip anything Kubernetes sent).
const body = { type: 'object', description: 'An admission.k8s.io/v1 AdmissionReview with a request.' };

function logDecision(app: FastifyInstance, kind: string, body: unknown, result: AdmissionReview, mode: string): void {
  const request = (
    body as {
      request?: {
        name?: string;
        namespace?: string;
        operation?: string;
        kind?: { kind?: string };
        object?: { metadata?: { name?: string } };
      };
    }
  ).request;
  const r = result.response;
  app.log.info(
    {
      webhook: mode,
      uid: r.uid,
      kind: request?.kind?.kind,
      namespace: request?.namespace,
      name: request?.name ?? request?.object?.metadata?.name,
      operation: request?.operation,
      allowed: r.allowed,
      ...(r.status ? { reason: r.status.message } : {}),
      ...(r.patch ? { patchBytes: r.patch.length } : {}),
    },
    `admission ${kind}`,
  );
}

export const admissionPlugin: FastifyPluginAsync = async (app) => {
  precompile();
  // Bodies are parsed by lib/server/body.ts (buildServer installs it for every route): any
  // Content-Type is read as JSON, so a wrong one is answered with the same 400 as a broken body.
  const routes = [
    ['validate', validateReview],
    ['mutate', mutateReview],
  ] as const;
  for (const [mode, handler] of routes) {
    app.post(
      WEBHOOK_PATHS[mode],
      {
        bodyLimit: BODY_LIMIT,
        schema: { body, response: { 200: reviewReply, '4xx': errorReply } },
      },
      async (request) => {
        const result = handler(request.body);
        logDecision(app, mode === 'validate' ? 'decision' : 'defaults', request.body, result, mode);
        return result;
      },
    );
  }
};
