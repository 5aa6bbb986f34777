// Source URLs in Argo CD objects and in kinds added by JSON pointer, judged by a sources rule.
import t from 'tap';
import { admit } from '../../src/admission/index.js';
import { reviewForObject } from '../../src/admission/synthesize.js';
import { NullDecisionRecorder } from '../../src/audit/index.js';
import { loadPolicySet, type PolicySet } from '../../src/policy/index.js';
import { policyDir, policyYaml } from '../helpers/policies.js';

let set: PolicySet;
t.before(async () => {
  const result = await loadPolicySet([await policyDir({ 'p.yaml': policyYaml('gitops-sources', `
match:
  resources:
    - { apiGroups: [argoproj.io], resources: [applications, applicationsets, appprojects], operations: [CREATE, UPDATE] }
    - { apiGroups: [example.com], resources: [mirrors], operations: [CREATE] }
sources:
  allow: ["https://github.com/acme/", "oci://ghcr.io/acme/charts/"]
  fields:
    - { apiGroups: [example.com], kinds: [Mirror], pointers: ["/spec/upstream", "/spec/replicas/*/url"] }
`) })]);
  set = result.set!;
});

const decide = async (object: Record<string, unknown>) =>
  (await admit(reviewForObject(object as never, { namespace: 'argocd' }), 'validate', { policies: () => set, recorder: new NullDecisionRecorder(), replica: 't', deadlineMs: 8000 })).review.response;

t.test('Argo CD Application: source and every one of sources', async (t) => {
  const app = (sources: unknown[]) => ({ apiVersion: 'argoproj.io/v1alpha1', kind: 'Application', metadata: { name: 'a' }, spec: { sources } });
  t.equal((await decide(app([{ repoURL: 'https://github.com/acme/app.git' }, { repoURL: 'ghcr.io/acme/charts', chart: 'web' }]))).allowed, true);
  const denied = await decide(app([{ repoURL: 'https://github.com/acme/app.git' }, { repoURL: 'https://github.com/evil/app.git' }]));
  t.match(denied.status?.message, /spec\.sources\[1\]\.repoURL https:\/\/github\.com\/evil\/app\.git is not on the source allowlist/);
});

t.test('ApplicationSet templates and git generators; templated URLs cannot be vouched for', async (t) => {
  const set = (repoURL: string, generator = 'https://github.com/acme/apps.git') => ({
    apiVersion: 'argoproj.io/v1alpha1', kind: 'ApplicationSet', metadata: { name: 's' },
    spec: { generators: [{ git: { repoURL: generator } }], template: { spec: { source: { repoURL } } } },
  });
  t.equal((await decide(set('https://github.com/acme/app.git'))).allowed, true);
  t.match((await decide(set('https://github.com/acme/app.git', 'https://gitlab.com/x/y'))).status?.message, /spec\.generators\[0\]\.git\.repoURL/);
  const templated = await decide(set('https://github.com/acme/{{app}}.git'));
  t.equal(templated.allowed, false, 'a placeholder below an allowed org could render to ../anything');
  t.match(templated.status?.message, /spec\.template\.spec\.source\.repoURL: .*unrendered template/);
});

t.test('AppProject sourceRepos: an org glob is a prefix, "*" admits everything and is refused', async (t) => {
  const project = (sourceRepos: string[]) => ({ apiVersion: 'argoproj.io/v1alpha1', kind: 'AppProject', metadata: { name: 'p' }, spec: { sourceRepos } });
  t.equal((await decide(project(['https://github.com/acme/*']))).allowed, true);
  t.equal((await decide(project(['https://github.com/*']))).allowed, false);
  t.match((await decide(project(['*']))).status?.message, /spec\.sourceRepos\[0\]/);
});

t.test('other kinds by JSON pointer, with * over lists', async (t) => {
  const mirror = (upstream: string, replica: string) => ({ apiVersion: 'example.com/v1', kind: 'Mirror', metadata: { name: 'm' }, spec: { upstream, replicas: [{ url: replica }] } });
  t.equal((await decide(mirror('https://github.com/acme/a', 'https://github.com/acme/b'))).allowed, true);
  t.match((await decide(mirror('https://github.com/acme/a', 'https://evil.example/b'))).status?.message, /spec\.replicas\[0\]\.url https:\/\/evil\.example\/b/);
});

t.test('sources.hostAliases: an OCIRepository on docker.io against an entry on registry-1.docker.io', async (t) => {
  const load = async (aliases: string) => loadPolicySet([await policyDir({ 'p.yaml': policyYaml('hub', `
match:
  resources:
    - { apiGroups: [source.toolkit.fluxcd.io], resources: [ocirepositories], operations: [CREATE] }
sources:
  allow: ["oci://registry-1.docker.io/bitnamicharts/"]
${aliases}`) })]);
  const repo = { apiVersion: 'source.toolkit.fluxcd.io/v1', kind: 'OCIRepository', metadata: { name: 'redis' }, spec: { url: 'oci://docker.io/bitnamicharts/redis' } };
  const judge = async (aliases: string) => {
    const loaded = await load(aliases);
    return (await admit(reviewForObject(repo as never, { namespace: 'apps' }), 'validate', { policies: () => loaded.set!, recorder: new NullDecisionRecorder(), replica: 't', deadlineMs: 8000 })).review.response;
  };
  t.equal((await judge('')).allowed, false, 'no table: another host (CASES.md F05)');
  t.equal((await judge('  hostAliases: [[docker.io, registry-1.docker.io, index.docker.io]]')).allowed, true, 'with the table: the same registry');
  const broken = await load('  hostAliases: [[docker.io, "docker hub"]]');
  t.equal(broken.set, undefined);
  t.match(broken.errors.map(String).join('\n'), /p\.yaml:\d+:\d+: .*"docker hub" is not an acceptable source URL: invalid host name/);
});
