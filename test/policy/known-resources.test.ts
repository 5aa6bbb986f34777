// Resource rules that load but can never match: what is flagged, and what is not.
import t from 'tap';
import { matchWarnings } from '../../src/policy/known-resources.js';
import type { PolicySpec } from '../../src/policy/types.js';

type Rule = PolicySpec['match']['resources'][number];
const warn = (...rules: Partial<Rule>[]) => matchWarnings({ resources: rules.map((r) => ({ operations: ['CREATE'], ...r })) } as PolicySpec['match']);
const messages = (...rules: Partial<Rule>[]) => warn(...rules).map((w) => w.message);

t.test('what every real rule looks like raises nothing', async (t) => {
  t.same(warn(
    { apiGroups: [''], resources: ['pods', 'pods/ephemeralcontainers', 'pods/exec', 'services', '*/scale'] },
    { apiGroups: ['', 'apps', 'batch'], resources: ['*'] },
    { apiGroups: ['apps'], kinds: ['Deployment', 'StatefulSet/scale'] },
    { apiGroups: ['source.toolkit.fluxcd.io'], resources: ['gitrepositories', 'ocirepositories', 'helmrepositories', 'buckets'] },
    { apiGroups: ['*'], resources: ['widgets'] },
    { resources: ['pods'] },
    { apiGroups: ['example.com', 'acme.io'], resources: ['widgets'], kinds: undefined },
    { apiGroups: ['*'], kinds: ['Widget', '*'] },
  ), []);
});

t.test('singulars, capitals and misspellings in a known group, with what was meant', async (t) => {
  t.match(messages({ apiGroups: [''], resources: ['pod'] }), [/resource "pod" is not served by the core group \(""\) \(did you mean "pods"\?\)/]);
  t.match(messages({ apiGroups: ['source.toolkit.fluxcd.io'], resources: ['gitrepository'] }), [/did you mean "gitrepositories"/]);
  t.match(messages({ apiGroups: ['networking.k8s.io'], resources: ['ingress'] }), [/did you mean "ingresses"/]);
  t.match(messages({ apiGroups: ['apps'], resources: ['deploymnets'] }), [/did you mean "deployments"/]);
  t.match(messages({ apiGroups: ['apps'], resources: ['Deployment/scale'] }), [/resource "Deployment\/scale" never matches: resources are lower-case plurals \(did you mean "deployments\/scale", or kinds: \["Deployment"\]\?\)/]);
  t.match(messages({ apiGroups: [''], resources: ['pods/exce'] }), [/subresource "exce" is not one Kubernetes serves \(did you mean "exec"\?\)/]);
  t.match(messages({ apiGroups: [''], resources: ['deployments'] }), [/resource "deployments" is not served by the core group/], 'a resource of another group');
});

t.test('an unknown group (a CRD) is checked only for what no group can serve', async (t) => {
  t.same(messages({ apiGroups: ['example.com'], resources: ['widgets'] }), []);
  t.match(messages({ apiGroups: ['example.com'], resources: ['Widgets'] }), [/resources are lower-case plurals$/]);
  t.same(messages({ apiGroups: ['', 'example.com'], resources: ['widgets'] }), [], 'one unknown group among known ones: it may serve it');
  t.same(messages({ apiGroups: ['constructor'], resources: ['widgets'] }), [], 'a group named like an Object.prototype member is a CRD group too');
  t.match(messages({ apiGroups: [''], resources: ['constructor'] }), [/resource "constructor" is not served by the core group/], 'and no core resource');
});

t.test('groups that are certainly mistakes', async (t) => {
  t.match(messages({ apiGroups: ['core'], resources: ['pods'] }), [/"core" is not an API group: the core group \(pods, services …\) is ""/]);
  t.match(messages({ apiGroups: ['v1'], resources: ['pods'] }), [/"v1" is not an API group/]);
  t.match(messages({ apiGroups: ['apps/v1'], resources: ['deployments'] }), [/apiGroups name groups without their versions \("apps"; versions go in apiVersions\)/]);
  t.match(messages({ apiGroups: ['app'], resources: ['deployments'] }), [/"app" is not a built-in API group \(did you mean "apps"\?\)/]);
});

t.test('kinds: case and group', async (t) => {
  t.match(messages({ apiGroups: [''], kinds: ['pod'] }), [/kind "pod" never matches: kinds are CamelCase singulars \(did you mean "Pod"\?\)/]);
  t.match(messages({ apiGroups: [''], kinds: ['pods'] }), [/did you mean "Pod"/]);
  t.match(messages({ apiGroups: [''], kinds: ['Deployment'] }), [/kind "Deployment" is not served by the core group \(""\) \(Deployment is in group "apps"\)/]);
  t.match(messages({ apiGroups: ['apps'], kinds: ['Deploymnet'] }), [/did you mean "Deployment"/]);
});

t.test('each warning points at its entry', async (t) => {
  t.same(warn({ apiGroups: [''], resources: ['pods'] }, { apiGroups: ['core'], resources: ['pods'] }, { apiGroups: [''], resources: ['pods', 'pod'] }).map((w) => w.path), [
    ['spec', 'match', 'resources', 1, 'apiGroups', 0],
    ['spec', 'match', 'resources', 2, 'resources', 1],
  ]);
});

t.test('an exclusion that can never match is warned about too: it would exclude nothing', async (t) => {
  const warnings = matchWarnings({ resources: [{ apiGroups: ['apps'], resources: ['deployments'], operations: ['CREATE'] }], excludeResources: [{ apiGroups: ['apps'], resources: ['deployment'], operations: ['CREATE'] }] });
  t.same(warnings.map((w) => w.path), [['spec', 'match', 'excludeResources', 0, 'resources', 0]]);
  t.match(warnings[0]?.message, /did you mean "deployments"/);
});
