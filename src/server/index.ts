// Starts trustgate serve: policies, TLS (given or generated), the fastify app, hot reloads.
import { createImageVerifier } from '../supplychain/index.js';
import { resolve } from 'node:path';
import { pino, type Logger } from 'pino';
import { ConfigError, type ServeConfig } from '../config.js';
import { readFileSync } from 'node:fs';
import { AuditPipeline, createSink, parseHeaderLines } from '../audit/index.js';
import { CheckpointSigner, readSigningKey } from '../audit/checkpoint.js';
import { TRUSTGATE_VERSION } from '../audit/record.js';
import { readClusterFile } from '../kube/cluster-file.js';
import type { SelfManagedCertificates } from '../kube/index.js';
import { paramWatches, PolicyStore, readsClusterData } from '../policy/index.js';
import { buildApp } from './app.js';
import { ensureDevelopmentCertificates } from './certs.js';
import { auditMetrics, createMetrics } from './metrics.js';
import { readTlsMaterial, secureContextOptions, TlsReloader } from './tls.js';

export { buildApp, DEFAULT_BODY_LIMIT, type AppServices } from './app.js';
export { createMetrics, type Metrics } from './metrics.js';
export { generateCertificates, generateClientCertificate, ensureDevelopmentCertificates } from './certs.js';

function checkpointSigner(file: string, config: ServeConfig): CheckpointSigner {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`--audit-signing-key ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  try {
    return new CheckpointSigner(readSigningKey(pem, `--audit-signing-key ${file}`), { records: config.auditCheckpointRecords, ms: config.auditCheckpointMs });
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
}

export interface RunningServer {
  url: string;
  port: number;
  caCertFile?: string;
  store: PolicyStore;
  audit: AuditPipeline;
  /**
   * Stops serving. With delayMs, first keeps answering that long, not ready and closing each
   * admission connection after its answer, while endpoints and kube-proxy stop routing here.
   */
  close(options?: { delayMs?: number }): Promise<void>;
}

export async function startServer(config: ServeConfig, logger: Logger = pino({ level: config.logLevel })): Promise<RunningServer> {
  // read first: a key that cannot sign stops the start before anything listens or watches
  const checkpoints = config.auditSigningKey ? checkpointSigner(config.auditSigningKey, config) : undefined;
  const metrics = createMetrics();
  // @kubernetes/client-node costs ~85 MiB resident: loaded only when there is a cluster to talk to
  const kube = config.kubeconfig || config.inCluster ? await import('../kube/index.js') : undefined;
  const kubeConfig = kube?.loadKubeConfig(config);
  // a cache no policy reads any more outlives the requests that may still read it: twice the deadline
  const cluster = kube && kubeConfig ? new kube.ClusterState(kubeConfig, logger, 2 * config.deadlineMs) : undefined;
  if (cluster) metrics.observeClusterCaches(() => cluster.cacheStates());
  // policies' authorization checks (`authorizer`): SubjectAccessReviews; without a cluster, errored decisions
  const authorizer = kube && kubeConfig ? new kube.SubjectAccessReviewAuthorizer(kubeConfig, logger, (outcome) => metrics.authorizationChecks.inc({ outcome })) : undefined;
  const pullSecrets = kube && kubeConfig && config.pullSecrets ? new kube.PullSecretReader(kubeConfig, logger) : undefined;
  const store = new PolicyStore(config.policies, {
    loaded(set) {
      const watches = paramWatches(set);
      cluster?.watchParams(watches);
      if (!cluster && !config.clusterFile && readsClusterData(watches)) {
        // fail closed, loudly: these policies deny (failurePolicy Fail) until cluster data is given
        logger.error({ policies: set.policies.filter((p) => p.params.kind === 'object' || p.params.kind === 'objects' || p.sources?.configMap).map((p) => p.name) },
          'policies read ConfigMaps or other cluster objects but no cluster is configured (--kubeconfig, --in-cluster or --cluster-file): they fail with PARAMS_NOT_FOUND');
      }
      if (!authorizer && set.usesAuthorizer) {
        logger.warn({ policies: set.policies.filter((p) => p.usesAuthorizer).map((p) => p.name) },
          'policies make authorization checks (authorizer) but no cluster is configured (--kubeconfig or --in-cluster): each check is an errored decision, never allowed');
      }
      metrics.policyReloads.inc({ result: 'ok' });
      metrics.policiesLoaded.set(set.policies.length);
      metrics.policyWarnings.set(set.warnings.length);
      metrics.exceptionExpiry.reset();
      for (const e of set.exceptions.exceptions) metrics.exceptionExpiry.set({ exception: e.name }, e.expires / 1000);
      metrics.policySetInfo.reset();
      metrics.policySetInfo.set({ revision: set.revision }, 1);
      metrics.lastReloadFailed.set(0);
      logger.info({ revision: set.revision, policies: set.policies.map((p) => `${p.name}@${p.revision}`), ...(set.exceptions.size ? { exceptions: set.exceptions.exceptions.map((e) => `${e.name} until ${e.expiresAt}`) } : {}), files: set.files }, 'policy set loaded');
      // loaded all the same: a newer server may serve what trustgate's table lacks
      if (set.warnings.length) logger.warn({ warnings: set.warnings.map((w) => w.message) }, 'policy files load with warnings: rules that never match, validations that fail on every DELETE, exceptions expired or about to');
    },
    rejected(errors) {
      metrics.policyReloads.inc({ result: 'rejected' });
      metrics.lastReloadFailed.set(1);
      logger.error({ errors: errors.map((e) => e.message), keeping: store.current?.revision ?? null }, 'policy files rejected; the last good policy set stays active');
    },
  });
  cluster?.watchNamespaces();
  const loadErrors = await store.reload();
  if (loadErrors.length) {
    await cluster?.stop();
    throw new Error(`policies in ${config.policies.join(', ')} do not load:\n${loadErrors.map((e) => `  ${e.message}`).join('\n')}`);
  }
  store.watch();

  let certFile = config.tlsCert;
  let keyFile = config.tlsKey;
  let caCertFile: string | undefined;
  let selfManaged: SelfManagedCertificates | undefined;
  if (config.selfManagedCerts && kube && kubeConfig) {
    const service = config.webhookName;
    const dnsNames = [service, `${service}.${config.namespace}`, `${service}.${config.namespace}.svc`, `${service}.${config.namespace}.svc.cluster.local`, ...config.certDnsNames];
    selfManaged = new kube.SelfManagedCertificates(kubeConfig, {
      namespace: config.namespace, secretName: `${config.webhookName}-ca`, webhookName: config.webhookName, leaseName: `${config.webhookName}-ca-bundle`,
      identity: config.replica, dnsNames, certDir: resolve(config.certDir), log: logger,
    });
    ({ cert: certFile, key: keyFile, caCert: caCertFile } = await selfManaged.prepare());
    selfManaged.start();
    logger.info({ secret: `${config.namespace}/${config.webhookName}-ca`, dnsNames }, 'serving a certificate from the shared webhook CA; the lease holder keeps the caBundle');
  } else if (!certFile || !keyFile) {
    const dev = await ensureDevelopmentCertificates(resolve(config.certDir), config.certDnsNames);
    ({ cert: certFile, key: keyFile, caCert: caCertFile } = dev.paths);
    logger.warn({ caCert: caCertFile, cert: certFile, generated: dev.generated, dnsNames: config.certDnsNames },
      'no --tls-cert/--tls-key given: serving a development certificate; use the CA file as the webhook caBundle');
  }
  const tlsFiles = { cert: certFile, key: keyFile, clientCa: config.clientCa };
  const tls = await readTlsMaterial(tlsFiles);
  metrics.certificateExpiry.set(tls.notAfter.getTime() / 1000);

  const headers = parseHeaderLines(config.auditHeaders);
  const sinks = config.audit.map((spec) => createSink(spec, {
    headers, format: config.auditHttpFormat, ca: config.auditCa ? readFileSync(config.auditCa) : undefined, warn: (message, fields) => logger.warn(fields, message),
  }));
  if (!sinks.length) logger.warn({ spool: config.auditSpool }, 'no audit sink: decision records stay in the spool until one is configured');
  const recorder = await AuditPipeline.start({
    spoolDir: resolve(config.auditSpool), sinks, whenFull: config.auditFull, maxSpoolBytes: config.auditSpoolMaxBytes, spoolSync: config.auditSync, logger, metrics: auditMetrics(metrics), checkpoints,
  });
  logger.info({ spool: resolve(config.auditSpool), sinks: sinks.map((s) => s.name), chainHead: recorder.chainHead,
    checkpoints: checkpoints ? { keyId: checkpoints.keyId, every: checkpoints.every } : 'none (no --audit-signing-key): the chain shows edits, but not a rewrite of the whole log' }, 'audit pipeline started');
  const offline = config.clusterFile ? readClusterFile(config.clusterFile) : undefined;
  const images = await createImageVerifier({
    registryConfig: config.registryConfig, insecureRegistries: config.insecureRegistries, registryCa: config.registryCa,
    namedRegistries: () => store.current?.registries ?? new Set(),
    metrics: { cache: (r) => metrics.imageCache.inc({ result: r }), verification: (r, ms) => metrics.imageVerifications.observe({ result: r }, ms / 1000) },
    // hosts are bounded: only registries the policies name are ever contacted
    observeRegistry: (host, outcome, ms) => metrics.registryRequests.observe({ registry: host, outcome }, ms / 1000),
  });
  let draining = false;
  const app = buildApp(
    {
      admission: {
        policies: () => store.current, recorder, namespaces: offline ?? cluster, params: offline ?? cluster, replica: config.replica, deadlineMs: config.deadlineMs, images, authorizer,
        pullCredentials: pullSecrets ? (request) => pullSecrets.credentialsFor(request) : undefined,
        labels: { cluster: config.clusterName, version: TRUSTGATE_VERSION },
      },
      metrics,
      logger,
      readiness: [
        { name: 'policies', ready: () => store.current !== undefined },
        { name: 'audit', ready: () => recorder.ready },
        { name: 'cluster caches', ready: () => cluster?.synced() ?? true },
        { name: 'not shutting down', ready: () => !draining },
      ],
      draining: () => draining,
    },
    {
      bodyLimit: config.bodyLimit,
      // A review still arriving after twice the time trustgate takes to decide comes from no API
      // server waiting for the answer: without a bound, senders trickling bodies could hold
      // connections (and their buffers) forever. Node checks connections every interval.
      requestTimeoutMs: 2 * config.deadlineMs,
      // a client certificate is asked for, not required at the handshake: probes and scrapers have none
      ...(config.clientCa ? { clientAuth: { names: config.clientNames } } : {}),
      https: { ...secureContextOptions(tls), ...(config.clientCa ? { requestCert: true, rejectUnauthorized: false } : {}), headersTimeout: 2 * config.deadlineMs, connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.floor(config.deadlineMs / 2))) } as never,
    },
  );
  await app.listen({ host: config.listen.host, port: config.listen.port });
  const reloader = new TlsReloader(tlsFiles, {
    reloaded(m) {
      metrics.tlsReloads.inc({ result: 'ok' });
      metrics.certificateExpiry.set(m.notAfter.getTime() / 1000);
      logger.info({ notAfter: m.notAfter.toISOString() }, 'serving certificate reloaded');
    },
    failed(err) {
      metrics.tlsReloads.inc({ result: 'error' });
      logger.warn({ reason: err.message }, 'serving certificate not reloaded; keeping the current one');
    },
  });
  reloader.start(app.server as unknown as import('node:https').Server);
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.listen.port;
  const host = config.listen.host === '0.0.0.0' || config.listen.host === '::' ? '127.0.0.1' : config.listen.host;
  logger.info({ url: `https://${host}:${port}` }, 'trustgate serving');
  return {
    url: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    caCertFile,
    store,
    audit: recorder,
    async close(options = {}) {
      if (options.delayMs) {
        draining = true;
        logger.info({ delayMs: options.delayMs }, 'shutting down: answering while routes to this replica are removed');
        await new Promise((resolve) => setTimeout(resolve, options.delayMs));
      }
      reloader.close();
      selfManaged?.stop();
      store.close();
      await app.close(); // drains in-flight reviews before resolving
      await cluster?.stop();
      // give the sinks a bounded chance to take what is spooled; the rest waits for the next start
      await recorder.drained(5000);
      await recorder.close();
      await images.client.close();
    },
  };
}
