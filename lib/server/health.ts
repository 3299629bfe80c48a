// GET /healthz (the process serves requests) and GET /readyz (every readiness check passes).
import type { FastifyPluginAsync } from 'fastify';

export type ReadinessCheck = () => boolean | string | Promise<boolean | string>;

export interface HealthOptions {
  /** Named checks; a check returning false or a string (the reason) makes /readyz answer 503. */
  checks?: Record<string, ReadinessCheck>;
}

const reply = {
  type: 'object',
  properties: { status: { type: 'string' }, checks: { type: 'object', additionalProperties: { type: 'string' } } },
};

export const healthPlugin: FastifyPluginAsync<HealthOptions> = async (app, opts) => {
  app.get('/healthz', { schema: { response: { 200: reply } } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { response: { 200: reply, 503: reply } } }, async (_request, res) => {
    const checks: Record<string, string> = {};
    let ready = true;
    for (const [name, check] of Object.entries(opts.checks ?? {})) {
      let result: boolean | string;
      try {
        result = await check();
      } catch (err) {
        result = err instanceof Error ? err.message : String(err);
      }
      checks[name] = result === true ? 'ok' : result === false ? 'not ready' : result;
      if (result !== true) ready = false;
    }
    res.code(ready ? 200 : 503);
    return { status: ready ? 'ok' : 'not ready', checks };
  });
};
