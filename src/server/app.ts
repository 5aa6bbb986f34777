// The fastify application: admission routes, health and metrics as encapsulated plugins, with
// the policy set, recorder and metrics handed in as decorated services.
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Logger } from 'pino';
import { admit, AdmissionInputError, PolicySetUnavailableError, type AdmissionServices, type Endpoint } from '../admission/index.js';
import type { Metrics } from './metrics.js';

export interface ReadinessCheck {
  name: string;
  ready(): boolean;
}

export interface AppServices {
  admission: AdmissionServices;
  metrics: Metrics;
  readiness: ReadinessCheck[];
  logger: Logger;
}

export interface AppOptions {
  bodyLimit?: number;
  https?: FastifyServerOptions extends { https?: infer H } ? H : never;
}

declare module 'fastify' {
  interface FastifyInstance {
    trustgate: AppServices;
  }
}

export const DEFAULT_BODY_LIMIT = 16 * 1024 * 1024;

function errorBody(error: string, message: string) {
  return { error, message };
}

async function admissionRoutes(app: FastifyInstance): Promise<void> {
  const { admission, metrics, logger } = app.trustgate;
  const handle = (endpoint: Endpoint) => async (req: import('fastify').FastifyRequest, reply: import('fastify').FastifyReply) => {
    const end = metrics.latency.startTimer({ endpoint });
    try {
      const outcome = await admit(req.body, endpoint, admission);
      metrics.decisions.hot({ endpoint, allowed: String(outcome.decision.allowed), dry_run: String(outcome.record.request.dryRun) });
      for (const r of outcome.results) metrics.policyResults.hot({ policy: r.name, mode: r.mode, result: r.result, code: r.code ?? '' });
      metrics.requests.hot({ endpoint, code: '200' });
      return reply.code(200).send(outcome.review);
    } catch (err) {
      if (err instanceof AdmissionInputError) {
        metrics.badRequests.inc({ error: err.error });
        metrics.requests.hot({ endpoint, code: String(err.statusCode) });
        logger.warn({ endpoint, error: err.error, reason: err.message, remote: req.ip }, 'rejected admission request');
        return reply.code(err.statusCode).send(errorBody(err.error, err.message));
      }
      if (err instanceof PolicySetUnavailableError) {
        metrics.requests.hot({ endpoint, code: '503' });
        return reply.code(503).send(errorBody('NotReady', err.message));
      }
      throw err;
    } finally {
      end();
    }
  };
  app.post('/validate', handle('validate'));
  app.post('/mutate', handle('mutate'));
}

async function healthRoutes(app: FastifyInstance): Promise<void> {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const waiting = app.trustgate.readiness.filter((c) => !c.ready()).map((c) => c.name);
    if (waiting.length) return reply.code(503).send({ status: 'not ready', waiting });
    return { status: 'ready' };
  });
}

async function metricsRoute(app: FastifyInstance): Promise<void> {
  app.get('/metrics', async (_req, reply) => {
    const { registry } = app.trustgate.metrics;
    return reply.header('content-type', registry.contentType).send(await registry.metrics());
  });
}

export function buildApp(services: AppServices, options: AppOptions = {}): FastifyInstance {
  const app = Fastify({
    loggerInstance: services.logger,
    // one structured line per decision is logged by the recorder; per-request lines would double it
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimit ?? DEFAULT_BODY_LIMIT,
    // a label key "__proto__" is legal in Kubernetes objects; JSON.parse keeps it an own property
    onProtoPoisoning: 'ignore',
    onConstructorPoisoning: 'ignore',
    return503OnClosing: true,
    ...(options.https ? { https: options.https } : {}),
  } as FastifyServerOptions) as unknown as FastifyInstance;
  app.decorate('trustgate', services);

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, JSON.parse(body as string));
    } catch (err) {
      done(new AdmissionInputError('MalformedJSON', `the body is not valid JSON: ${(err as Error).message}`), undefined);
    }
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    const status = err instanceof AdmissionInputError ? err.statusCode : err.statusCode ?? 500;
    const error = err instanceof AdmissionInputError ? err.error
      : status === 413 ? 'BodyTooLarge'
      : status === 415 ? 'UnsupportedMediaType'
      : status >= 500 ? 'InternalError' : 'BadRequest';
    const message = status === 415 ? `content type ${JSON.stringify(req.headers['content-type'] ?? '')} is not supported: send application/json`
      : status === 413 ? `the body is larger than the ${app.initialConfig.bodyLimit}-byte limit`
      : status >= 500 ? 'internal error; see the trustgate log' : err.message;
    services.metrics.badRequests.inc({ error });
    if (status >= 500) services.logger.error({ err, url: req.url }, 'request failed');
    else services.logger.warn({ url: req.url, error, reason: message, remote: req.ip }, 'rejected request');
    return reply.code(status).send(errorBody(error, message));
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send(errorBody('NotFound', `no route ${req.method} ${req.url}; trustgate serves POST /validate, POST /mutate, GET /healthz, /readyz, /metrics`)));

  app.register(admissionRoutes);
  app.register(healthRoutes);
  app.register(metricsRoute);
  return app;
}
