// Certificates without cert-manager: one CA for all replicas, kept in a Secret (the first replica
// to start creates it; a 409 means another was first, and its CA is read instead); each replica
// issues its own serving certificate from it; and the replica holding a Lease keeps the caBundle
// of trustgate's two webhook configurations equal to that CA, so only one writer ever patches.
import { AdmissionregistrationV1Api, CoordinationV1Api, CoreV1Api, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { generateCa, issueServingCertificate, writeCertificates, type CertificatePaths, type PemPair } from '../server/certs.js';
import { statusOf } from './api-errors.js';

export interface SelfManagedOptions {
  namespace: string;
  /** Secret holding ca.crt and ca.key */
  secretName: string;
  /** name of both webhook configurations */
  webhookName: string;
  leaseName: string;
  /** this replica, as the Lease's holderIdentity */
  identity: string;
  dnsNames: string[];
  certDir: string;
  leaseSeconds?: number;
  log: Logger;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

export class SelfManagedCertificates {
  readonly #core: CoreV1Api;
  readonly #coordination: CoordinationV1Api;
  readonly #admission: AdmissionregistrationV1Api;
  readonly #leaseSeconds: number;
  #ca?: PemPair;
  #timer?: NodeJS.Timeout;
  #leading = false;

  constructor(kc: KubeConfig, readonly options: SelfManagedOptions) {
    this.#core = kc.makeApiClient(CoreV1Api);
    this.#coordination = kc.makeApiClient(CoordinationV1Api);
    this.#admission = kc.makeApiClient(AdmissionregistrationV1Api);
    this.#leaseSeconds = options.leaseSeconds ?? 30;
  }

  get leading(): boolean {
    return this.#leading;
  }

  /** The shared CA: read it, or create it; whoever loses the create race reads the winner's. */
  async #sharedCa(): Promise<PemPair> {
    const { namespace, secretName: name } = this.options;
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const secret = await this.#core.readNamespacedSecret({ namespace, name });
        const cert = secret.data?.['ca.crt'];
        const key = secret.data?.['ca.key'];
        if (!cert || !key) throw new Error(`Secret ${namespace}/${name} lacks ca.crt or ca.key`);
        return { cert: Buffer.from(cert, 'base64').toString('utf8'), key: Buffer.from(key, 'base64').toString('utf8') };
      } catch (err) {
        if (statusOf(err) !== 404) throw err;
      }
      const ca = await generateCa('trustgate webhook CA', 3650);
      try {
        await this.#core.createNamespacedSecret({ namespace, body: { apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: { name, namespace, labels: { 'app.kubernetes.io/name': 'trustgate' } }, data: { 'ca.crt': b64(ca.cert), 'ca.key': b64(ca.key) } } });
        this.options.log.info({ secret: `${namespace}/${name}` }, 'created the webhook CA');
        return ca;
      } catch (err) {
        if (statusOf(err) !== 409) throw err;
        // another replica created it first: read theirs
      }
    }
    throw new Error(`could not read or create Secret ${namespace}/${name}`);
  }

  /** CA from the Secret, and this replica's serving pair written into certDir. */
  async prepare(): Promise<CertificatePaths> {
    this.#ca = await this.#sharedCa();
    const serving = await issueServingCertificate(this.#ca, this.options.dnsNames, 365);
    return writeCertificates(this.options.certDir, this.#ca.cert, serving);
  }

  /** Takes or renews the Lease; true while this replica holds it. */
  async tryLead(now = new Date()): Promise<boolean> {
    const { namespace, leaseName: name, identity } = this.options;
    let lease: V1Lease;
    try {
      lease = await this.#coordination.readNamespacedLease({ namespace, name });
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
      try {
        await this.#coordination.createNamespacedLease({ namespace, body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace }, spec: { holderIdentity: identity, leaseDurationSeconds: this.#leaseSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 } } });
        return true;
      } catch (e) {
        if (statusOf(e) === 409) return false;
        throw e;
      }
    }
    const spec = lease.spec ?? {};
    const renewed = spec.renewTime ? new Date(spec.renewTime).getTime() : 0;
    const expired = renewed + (spec.leaseDurationSeconds ?? this.#leaseSeconds) * 1000 < now.getTime();
    if (spec.holderIdentity !== identity && !expired) return false;
    const taking = spec.holderIdentity !== identity;
    lease.spec = {
      ...spec, holderIdentity: identity, leaseDurationSeconds: this.#leaseSeconds, renewTime: now,
      acquireTime: taking ? now : spec.acquireTime, leaseTransitions: (spec.leaseTransitions ?? 0) + (taking ? 1 : 0),
    };
    try {
      // resourceVersion travels with the object: a concurrent writer makes this a 409
      await this.#coordination.replaceNamespacedLease({ namespace, name, body: lease });
      return true;
    } catch (err) {
      if (statusOf(err) === 409) return false;
      throw err;
    }
  }

  /** Sets caBundle on every webhook of both configurations that lacks this CA; a concurrent edit fails the test op and is retried next round. */
  async syncCaBundle(): Promise<number> {
    if (!this.#ca) throw new Error('prepare() first');
    const want = b64(this.#ca.cert);
    const name = this.options.webhookName;
    let patched = 0;
    const configs = [
      { kind: 'ValidatingWebhookConfiguration', read: () => this.#admission.readValidatingWebhookConfiguration({ name }), patch: (body: unknown) => this.#admission.patchValidatingWebhookConfiguration({ name, body }) },
      { kind: 'MutatingWebhookConfiguration', read: () => this.#admission.readMutatingWebhookConfiguration({ name }), patch: (body: unknown) => this.#admission.patchMutatingWebhookConfiguration({ name, body }) },
    ];
    for (const c of configs) {
      let current;
      try {
        current = await c.read();
      } catch (err) {
        if (statusOf(err) === 404) continue; // not installed (yet): nothing to keep in step
        throw err;
      }
      const ops: object[] = [{ op: 'test', path: '/metadata/resourceVersion', value: current.metadata?.resourceVersion }];
      (current.webhooks ?? []).forEach((w, i) => {
        const have = w.clientConfig?.caBundle;
        if (have !== want) ops.push({ op: have === undefined ? 'add' : 'replace', path: `/webhooks/${i}/clientConfig/caBundle`, value: want });
      });
      if (ops.length === 1) continue;
      await c.patch(ops);
      patched += ops.length - 1;
      this.options.log.info({ [c.kind]: name, webhooks: ops.length - 1 }, 'caBundle set to the webhook CA');
    }
    return patched;
  }

  /** One round: keep or take the Lease, and when holding it, the caBundle in step. */
  async round(): Promise<void> {
    try {
      const leading = await this.tryLead();
      if (leading !== this.#leading) this.options.log.info({ lease: this.options.leaseName, leading }, leading ? 'holding the caBundle lease' : 'another replica holds the caBundle lease');
      this.#leading = leading;
      if (leading) await this.syncCaBundle();
    } catch (err) {
      this.options.log.warn({ reason: (err as Error).message.split('\n')[0] }, 'caBundle round failed; retrying');
    }
  }

  start(): void {
    const every = Math.max(1000, (this.#leaseSeconds * 1000) / 3);
    const tick = () => {
      void this.round().finally(() => {
        if (this.#timer !== undefined) this.#timer = setTimeout(tick, every).unref();
      });
    };
    this.#timer = setTimeout(tick, 0).unref();
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
