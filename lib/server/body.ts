// The one body parser of every route (hooks, admission, query): strict UTF-8, JSON.parse (whose
// parser keeps its own stack), then the structure limits of lib/api/limits.ts before any route
// code walks the value. Whatever the Content-Type says, the body is read as JSON, so a wrong type
// is answered with the same 400 as a broken body.
import type { FastifyInstance } from 'fastify';
import { MAX_BODY_DEPTH, structureProblem } from '../api/limits.js';

export class BadBodyError extends Error {
  readonly statusCode = 400;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** JSON from the raw bytes, with messages that say what is wrong; throws BadBodyError (400). */
export function parseBody(raw: Buffer | string, maxDepth = MAX_BODY_DEPTH): unknown {
  let text: string;
  if (typeof raw === 'string') text = raw;
  else {
    try {
      text = utf8.decode(raw);
    } catch {
      throw new BadBodyError('the body is not valid UTF-8; send JSON encoded as UTF-8');
    }
  }
  if (text.trim() === '') throw new BadBodyError('the body is empty; send a JSON object');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    // V8's messages quote a snippet of the body at most; never the whole of it.
    throw new BadBodyError(`the body is not valid JSON: ${(err as Error).message.slice(0, 200)}`);
  }
  const problem = structureProblem(value, maxDepth);
  if (problem) {
    throw new BadBodyError(
      /__proto__/.test(problem.message)
        ? `the body must not contain __proto__ or constructor.prototype keys; found one at ${problem.field}`
        : `the body is too deeply nested: ${problem.field} ${problem.message}`,
    );
  }
  return value;
}

/** Replaces Fastify's parsers with parseBody for every content type; size limits stay per route (bodyLimit). */
export function useSafeJsonParser(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (request, raw, done) => {
    // No route, no body: the 404 says so, whatever was sent.
    if (request.is404) return done(null, undefined);
    try {
      done(null, parseBody(raw as Buffer));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
}
