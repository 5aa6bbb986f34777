// The fastify application: admission routes, health and metrics as encapsulated plugins, with
// the policy set, recorder and metrics handed in as decorated services.
import type { TLSSocket } from 'node:tls';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import type { Logger } from 'pino';
import { admit, AdmissionInputError, PolicySetUnavailableError, type AdmissionServices, type Endpoint } from '../admission/index.js';
import type { Caller } from '../audit/index.js';
import { BodyBudget, type BodyBudgetBusyError, LARGE_BODY_BYTES } from './body-budget.js';
import { checkClient, type ClientAuthOptions } from './client-auth.js';
import { requestDeadlineMs } from './deadline.js';
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
  /** true while shutting down: each admission connection is closed after its answer */
  draining?: () => boolean;
}

export interface AppOptions {
  bodyLimit?: number;
  /** bytes of large reviews (LARGE_BODY_BYTES and up) parsed and evaluated at once; default: bodyLimit */
  largeBodyBudget?: number;
  https?: FastifyServerOptions extends { https?: infer H } ? H : never;
  /** a request (headers and body) not received in this time is answered 408 and its connection closed; default: none */
  requestTimeoutMs?: number;
  /** admission callers must present a client certificate (the https options request one and carry the CA) */
  clientAuth?: ClientAuthOptions;
}

/** A large review's share of the body budget, and when it arrived (its wait counts against the deadline). */
interface LargeBody {
  release: () => void;
  receivedAt: number;
}

declare module 'fastify' {
  interface FastifyInstance {
    trustgate: AppServices;
  }
  interface FastifyRequest {
    largeBody: LargeBody | null;
    /** with --client-ca: who the client certificate says asked */
    caller: Caller | null;
  }
}

export const DEFAULT_BODY_LIMIT = 16 * 1024 * 1024;

/**
 * How long an idle keep-alive connection is kept. The API server's client drops its idle
 * connections after 90 s (Go's default transport); a server that closes first races the
 * client's next review on that connection, and a POST that reads an EOF there is not retried
 * (only a reset is): the webhook call fails and its failurePolicy decides. Fastify's default is 72 s.
 */
export const KEEP_ALIVE_MS = 120_000;

function errorBody(error: string, message: string) {
  return { error, message };
}

/**
 * A large review takes its share of the body budget before its body is read: while the budget
 * is spent, its bytes wait in the socket (the sender is held back by TCP), not in the heap. A
 * body of unknown length may be as large as the limit; one declared over it is left to the 413.
 * One that cannot start within half the deadline is refused here (503, retry); one whose caller
 * is gone, or whose body has not arrived and been answered a second past the deadline, gives
 * its share back, so a stalled or vanished sender cannot hold it.
 */
function guardLargeBodies(app: FastifyInstance, bodyLimit: number, budgetBytes: number): void {
  const { admission, metrics, logger } = app.trustgate;
  const budget = new BodyBudget(budgetBytes);
  app.addHook('preParsing', (req, reply, payload, done) => {
    const declared = req.headers['content-length'];
    if (declared === undefined && req.headers['transfer-encoding'] === undefined) return done(null, payload); // no body
    const length = declared === undefined ? bodyLimit : Number(declared);
    if (!(length >= LARGE_BODY_BYTES && length <= bodyLimit)) return done(null, payload);
    const receivedAt = Date.now();
    const deadlineMs = requestDeadlineMs(req.query, admission.deadlineMs);
    // it waits at most half the deadline for memory: the other half is its evaluation's
    budget.acquire(length, deadlineMs / 2).then((share) => {
      // a caller that gave up while waiting gets no answer, so no hook would give the share back
      if (req.raw.destroyed) {
        share();
        return done(new Error('the caller closed the connection while its review waited for memory'), payload);
      }
      const held = setTimeout(() => req.raw.destroy(), receivedAt + deadlineMs + 1000 - Date.now());
      req.largeBody = { release: () => (clearTimeout(held), share()), receivedAt };
      done(null, payload);
    }, (err: BodyBudgetBusyError) => {
      metrics.badRequests.inc({ error: 'Busy' });
      logger.warn({ url: req.url, reason: err.message, remote: req.ip }, 'large review refused: the body budget stayed spent');
      void reply.code(503).header('retry-after', '1').send(errorBody('Busy', err.message));
    });
  });
  // the share goes back once the review is answered (or its caller gave up)
  const release = (req: FastifyRequest, _reply: unknown, next: () => void) => {
    req.largeBody?.release();
    next();
  };
  app.addHook('onResponse', release);
  app.addHook('onRequestAbort', (req, next) => release(req, undefined, next));
}

/** Before anything of the body is read: a caller without an accepted certificate is refused. */
function requireClientCertificates(app: FastifyInstance, clientAuth: ClientAuthOptions): void {
  const { metrics, logger } = app.trustgate;
  app.addHook('onRequest', (req, reply, done) => {
    const verdict = checkClient(req.raw.socket as TLSSocket, clientAuth);
    if ('caller' in verdict) {
      req.caller = verdict.caller;
      return done();
    }
    const { refusal } = verdict;
    const error = refusal.status === 401 ? 'Unauthorized' : 'Forbidden';
    metrics.badRequests.inc({ error });
    logger.warn({ url: req.url, error, reason: refusal.message, remote: req.ip }, 'admission caller refused');
    void reply.code(refusal.status).header('connection', 'close').send(errorBody(error, refusal.message));
  });
}

async function admissionRoutes(app: FastifyInstance, options: { bodyLimit: number; largeBodyBudget: number; clientAuth?: ClientAuthOptions }): Promise<void> {
  const { admission, metrics, logger, draining } = app.trustgate;
  if (options.clientAuth) requireClientCertificates(app, options.clientAuth);
  guardLargeBodies(app, options.bodyLimit, options.largeBodyBudget);
  const handle = (endpoint: Endpoint) => async (req: FastifyRequest, reply: FastifyReply) => {
    const end = metrics.latency.startTimer({ endpoint });
    try {
      const outcome = await admit(req.body, endpoint, admission, {
        receivedAt: req.largeBody?.receivedAt, deadlineMs: requestDeadlineMs(req.query, admission.deadlineMs),
        // with client certificates, the record names who asked (set by the onRequest hook that let it through)
        caller: req.caller ?? undefined,
      });
      metrics.decisions.hot(endpoint, String(outcome.decision.allowed), String(outcome.record.request.dryRun));
      for (const r of outcome.results) {
        metrics.policyResults.hot(r.name, r.mode, r.result, r.code ?? '');
        if (r.exceptions) for (const e of r.exceptions) metrics.exceptionsApplied.inc({ exception: e.name, policy: r.name });
        // a patch leaves only with an admission: what each policy changed in objects admitted
        if (r.patch?.length && outcome.decision.allowed) metrics.patches.inc({ endpoint, policy: r.name }, r.patch.length);
      }
      metrics.requests.hot(endpoint, '200');
      // the API server reconnects through the Service, to a replica that is staying
      if (draining?.()) void reply.header('connection', 'close');
      return reply.code(200).send(outcome.review);
    } catch (err) {
      if (err instanceof AdmissionInputError) {
        metrics.badRequests.inc({ error: err.error });
        metrics.requests.hot(endpoint, String(err.statusCode));
        logger.warn({ endpoint, error: err.error, reason: err.message, remote: req.ip }, 'rejected admission request');
        return reply.code(err.statusCode).send(errorBody(err.error, err.message));
      }
      if (err instanceof PolicySetUnavailableError) {
        metrics.requests.hot(endpoint, '503');
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
    keepAliveTimeout: KEEP_ALIVE_MS,
    ...(options.requestTimeoutMs ? { requestTimeout: options.requestTimeoutMs } : {}),
    ...(options.https ? { https: options.https } : {}),
  } as FastifyServerOptions) as unknown as FastifyInstance;
  app.decorate('trustgate', services);
  app.decorateRequest('largeBody', null);
  app.decorateRequest('caller', null);

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

  const bodyLimit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  app.register(admissionRoutes, { bodyLimit, largeBodyBudget: options.largeBodyBudget ?? bodyLimit, clientAuth: options.clientAuth });
  app.register(healthRoutes);
  app.register(metricsRoute);
  return app;
}
