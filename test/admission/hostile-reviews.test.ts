// Reviews an API server would never send, but a caller could: real captured reviews with random
// JSON put in (or taken out of) the places the matchers, policies, image extraction and the
// record read. Whatever arrives, admit() either refuses it as bad input (the HTTP 400 path) or
// answers it, echoing the uid, with every policy judged or in error with a message of its own
// (never a JavaScript TypeError passed off as an evaluation error), and a record that seals.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { admit, AdmissionInputError, type AdmissionServices } from '../../src/admission/index.js';
import { canonicalJson, NullDecisionRecorder } from '../../src/audit/index.js';
import { loadPolicySet } from '../../src/policy/index.js';
import { ImageVerifier } from '../../src/supplychain/image-verifier.js';
import { RegistryClient } from '../../src/supplychain/oci/index.js';
import { policyDir, policyYaml } from '../helpers/policies.js';

const REVIEWS = new URL('../fixtures/admissionreviews/', import.meta.url).pathname;
const bases = readdirSync(REVIEWS).filter((f) => f.endsWith('.review.json')).map((f) => readFileSync(join(REVIEWS, f), 'utf8'));

// where the code under test reads; each edit sets one of them (creating what leads there) or deletes it
const O = ['request', 'object'];
const SPEC = [...O, 'spec'];
const C0 = [...SPEC, 'containers', '0'];
const PATHS: string[][] = [
  ['request'], ['request', 'uid'], ['request', 'kind'], ['request', 'kind', 'kind'], ['request', 'kind', 'group'], ['request', 'resource'],
  ['request', 'resource', 'resource'], ['request', 'subResource'], ['request', 'requestKind'], ['request', 'operation'], ['request', 'userInfo'],
  ['request', 'userInfo', 'username'], ['request', 'userInfo', 'groups'], ['request', 'userInfo', 'groups', '0'], ['request', 'userInfo', 'extra'],
  ['request', 'namespace'], ['request', 'name'], ['request', 'dryRun'], ['request', 'options'], ['request', 'oldObject'],
  ['request', 'oldObject', 'metadata', 'labels'], ['request', 'oldObject', 'spec'],
  O, [...O, 'metadata'], [...O, 'metadata', 'name'], [...O, 'metadata', 'namespace'], [...O, 'metadata', 'labels'], [...O, 'metadata', 'labels', 'team'],
  [...O, 'metadata', 'annotations'], [...O, 'metadata', 'deletionTimestamp'], [...O, 'metadata', 'finalizers'], [...O, 'metadata', 'ownerReferences'],
  [...O, 'kind'], [...O, 'apiVersion'], SPEC, [...SPEC, 'containers'], C0, [...C0, 'image'], [...C0, 'name'], [...C0, 'securityContext'],
  [...C0, 'securityContext', 'privileged'], [...C0, 'resources'], [...SPEC, 'initContainers'], [...SPEC, 'ephemeralContainers'],
  [...SPEC, 'volumes'], [...SPEC, 'volumes', '0', 'hostPath'], [...SPEC, 'imagePullSecrets'], [...SPEC, 'serviceAccountName'],
  [...SPEC, 'template'], [...SPEC, 'template', 'spec'], [...SPEC, 'template', 'spec', 'containers'], [...SPEC, 'template', 'spec', 'containers', '0', 'image'],
  [...SPEC, 'jobTemplate', 'spec', 'template', 'spec', 'containers'], [...SPEC, 'url'], [...SPEC, 'ref'], [...SPEC, 'ref', 'semver'],
  [...SPEC, 'endpoint'], [...SPEC, 'bucketName'], [...SPEC, 'chart'], [...SPEC, 'sourceRef'], [...SPEC, 'type'], [...SPEC, 'provider'],
];

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function edit(root: Record<string, Json>, path: string[], value: Json, remove: boolean): void {
  let at: Json = root;
  for (const key of path.slice(0, -1)) {
    if (typeof at !== 'object' || at === null) return;
    const next: Json | undefined = (at as Record<string, Json>)[key];
    if (typeof next !== 'object' || next === null) (at as Record<string, Json>)[key] = /^\d+$/.test(key) ? [] : {};
    at = (at as Record<string, Json>)[key]!;
  }
  if (typeof at !== 'object' || at === null) return;
  const last = path.at(-1)!;
  if (remove) delete (at as Record<string, Json>)[last];
  else (at as Record<string, Json>)[last] = value;
}

// what JavaScript says when our own code trips over a shape it did not expect
const JS_TROUBLE = /Cannot read propert|Cannot convert|is not a function|is not iterable|is not an object|undefined is not|null is not|Maximum call stack|Invalid array length/;

t.test('random JSON in the places policies read: refused as bad input or answered, never thrown', async (t) => {
  const dir = await policyDir({
    'selectors.yaml': [
      policyYaml('labelled-pods', `
mode: enforce
match:
  resources: [{ apiGroups: ["", apps, batch], resources: ["*"], operations: [CREATE, UPDATE, DELETE, CONNECT] }]
  objectSelector:
    matchLabels: { team: shop }
    matchExpressions: [{ key: tier, operator: NotIn, values: [debug] }, { key: app, operator: Exists }]
  excludeNamespaces: [kube-system]
validations:
  - expression: "object.metadata.name.size() < 40"
    messageExpression: "'name ' + object.metadata.name + ' is long'"
`),
      policyYaml('schema-checked', `
mode: warn
match:
  resources: [{ apiGroups: [""], resources: [pods], operations: [CREATE, UPDATE] }]
schema:
  type: object
  required: [metadata]
  properties:
    metadata: { type: object, properties: { labels: { type: object, additionalProperties: { type: string, maxLength: 63 } } } }
`),
    ].join('---\n'),
  });
  const shipped = new URL('../../policies/', import.meta.url).pathname;
  const loaded = await loadPolicySet([shipped, dir]);
  if (!loaded.set) throw new Error(loaded.errors.map((e) => e.message).join('\n'));
  const set = loaded.set;
  t.ok(set.policies.some((p) => p.images.length) && set.policies.some((p) => p.sources), 'images and sources rules among them');
  const client = new RegistryClient({ timeoutMs: 500, retries: 0 });
  t.teardown(() => client.close());
  // no registry is ever contacted: every image is refused as unnamed, after its extraction
  const services: AdmissionServices = {
    policies: () => set, recorder: new NullDecisionRecorder(), replica: 't', deadlineMs: 4000,
    images: new ImageVerifier(client, { allowedRegistries: () => new Set() }),
  };

  const json = fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json>;
  const review = fc.record({
    base: fc.constantFrom(...bases),
    edits: fc.array(fc.tuple(fc.constantFrom(...PATHS), json, fc.boolean()), { minLength: 1, maxLength: 4 }),
    endpoint: fc.constantFrom('validate' as const, 'mutate' as const),
  });
  let refused = 0;
  let answered = 0;
  await fc.assert(fc.asyncProperty(review, async ({ base, edits, endpoint }) => {
    const body = JSON.parse(base) as Record<string, Json>;
    for (const [path, value, remove] of edits) edit(body, path, value, remove);
    // the body as the HTTP layer hands it over: JSON text parsed again
    const received = JSON.parse(JSON.stringify(body)) as Record<string, Json>;
    let outcome;
    try {
      outcome = await admit(received, endpoint, services);
    } catch (err) {
      if (err instanceof AdmissionInputError) {
        refused++;
        return;
      }
      throw err;
    }
    answered++;
    const uid = (received.request as { uid: string }).uid;
    if (outcome.review.response.uid !== uid) throw new Error('uid not echoed');
    if (typeof outcome.review.response.allowed !== 'boolean') throw new Error('no decision');
    for (const r of outcome.results) {
      for (const m of r.messages) if (JS_TROUBLE.test(m)) throw new Error(`${r.name}: ${m}`);
    }
    canonicalJson(outcome.record);
    JSON.stringify(outcome.review);
  }), { numRuns: Number(process.env.HOSTILE_RUNS ?? 1500), seed: process.env.HOSTILE_SEED ? Number(process.env.HOSTILE_SEED) : undefined });
  t.ok(refused > 0 && answered > 0, `${answered} answered, ${refused} refused as bad input`);
});
