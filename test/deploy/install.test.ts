// The install: the Dockerfile's structure, the compiled bundle it copies starting, and the
// rendered manifests carrying the hardening and the lock-out protection they must.
import { execFile } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { promisify } from 'node:util';
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { DEPLOYMENT_MALLOC_ARENA_MAX, DEPLOYMENT_NODE_OPTIONS } from '../../src/kube/manifests.js';

const run = promisify(execFile);
const root = new URL('../../', import.meta.url).pathname;

t.test('Dockerfile: multi-stage, distroless nonroot runtime, pinned bases, no shell-needing steps at runtime', async (t) => {
  const text = await readFile(`${root}Dockerfile`, 'utf8');
  const froms = [...text.matchAll(/^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/gim)].map((m) => ({ image: m[1]!, stage: m[2] }));
  t.ok(froms.length >= 2, 'at least a build and a runtime stage');
  for (const f of froms) {
    t.notMatch(f.image, /:latest$|^[^:@]+$/, `${f.image} is pinned`);
  }
  const runtime = text.slice(text.lastIndexOf('FROM '));
  t.match(froms.at(-1)!.image, /^gcr\.io\/distroless\/nodejs\d+-debian\d+:nonroot$/);
  t.match(runtime, /^USER 65532:65532$/m, 'runs as nonroot');
  t.notMatch(runtime, /^RUN /m, 'no RUN in the runtime stage: it has no shell');
  t.notMatch(text, /HEALTHCHECK/, 'Kubernetes probes do that');
  t.match(runtime, /org\.opencontainers\.image\.source/);
  t.match(runtime, /COPY --from=build \/src\/package-lock\.json|package\.json \/src\/package-lock\.json/, 'the lock file travels with the image for SBOMs');
  const build = text.slice(0, text.lastIndexOf('FROM '));
  const patches = build.search(/^COPY patches /m);
  t.ok(patches >= 0 && patches < build.search(/^RUN npm ci/m), 'patches/ is in place before npm ci applies it to cel-js');
  t.match(runtime, `ENV NODE_OPTIONS="${DEPLOYMENT_NODE_OPTIONS}" MALLOC_ARENA_MAX=${DEPLOYMENT_MALLOC_ARENA_MAX}`, 'a plain docker run gets the memory settings of the rendered Deployment');
});

t.test('the compiled bundle the image copies starts', async (t) => {
  const out = `${root}.test-dist`;
  t.teardown(() => rm(out, { recursive: true, force: true }));
  await run(process.execPath, [`${root}node_modules/typescript/bin/tsc`, '-p', `${root}tsconfig.json`, '--outDir', out], { cwd: root });
  const help = await run(process.execPath, [`${out}/cli.js`, '--help']);
  t.match(help.stdout, /trustgate — Kubernetes admission webhook/);
  const lint = await run(process.execPath, [`${out}/cli.js`, 'lint', `${root}policies`]);
  t.match(lint.stdout, /^ok: \d+ policies/);
});

t.test('trustgate manifests: hardened, highly available, cannot lock the cluster out', async (t) => {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', `${root}src/cli.ts`, 'manifests', '--namespace', 'tg', '--image', 'registry.example/trustgate:1.0.0', '--policies', `${root}policies`]);
  const objects = parseAllDocuments(stdout).map((d) => d.toJS());
  const byKind = (kind: string) => objects.filter((o) => o.kind === kind);
  t.same([...new Set(objects.map((o) => o.kind))].sort(), ['ClusterRole', 'ClusterRoleBinding', 'Deployment', 'MutatingWebhookConfiguration', 'Namespace', 'NetworkPolicy', 'PodDisruptionBudget', 'Role', 'RoleBinding', 'Service', 'ServiceAccount', 'ValidatingWebhookConfiguration']);

  const deployment = byKind('Deployment')[0];
  t.ok(deployment.spec.replicas >= 2);
  const pod = deployment.spec.template.spec;
  t.ok(pod.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution.length);
  const c = pod.containers[0];
  t.equal(c.image, 'registry.example/trustgate:1.0.0');
  t.match(c.securityContext, { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] }, runAsNonRoot: true });
  t.match(pod.securityContext, { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
  t.match(c.readinessProbe.httpGet, { path: '/readyz', scheme: 'HTTPS' });
  t.ok(c.resources.limits.memory);
  t.equal(byKind('PodDisruptionBudget')[0].spec.minAvailable, 1);

  for (const kind of ['ValidatingWebhookConfiguration', 'MutatingWebhookConfiguration']) {
    const hook = byKind(kind)[0].webhooks[0];
    t.match(hook, { failurePolicy: 'Fail', matchPolicy: 'Equivalent', sideEffects: 'NoneOnDryRun', admissionReviewVersions: ['v1'], timeoutSeconds: 10 }, kind);
    t.same(hook.namespaceSelector.matchExpressions[0], { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'tg'] }, `${kind} never calls for its own namespace or kube-system`);
    const resources = hook.rules.flatMap((r: { resources: string[] }) => r.resources);
    t.ok(resources.includes('pods/ephemeralcontainers') && resources.includes('ocirepositories') && resources.includes('cronjobs'), `${kind} rules come from the policies`);
  }
  t.equal(byKind('MutatingWebhookConfiguration')[0].webhooks[0].reinvocationPolicy, 'IfNeeded');

  const clusterRole = byKind('ClusterRole')[0];
  const verbs = clusterRole.rules.flatMap((r: { resources: string[]; verbs: string[] }) => r.resources.map((res) => `${res}:${r.verbs.join(',')}`));
  t.same(verbs.sort(), ['mutatingwebhookconfigurations:get,patch', 'namespaces:get,list,watch', 'validatingwebhookconfigurations:get,patch']);
  t.notMatch(stdout, /secrets/, 'no access to Secrets unless pull secrets are enabled');
  t.same(byKind('Role').map((r) => [r.metadata.namespace, r.rules[0].resources[0], r.rules[0].verbs]), [['flux-system', 'configmaps', ['get', 'list', 'watch']]], 'ConfigMaps only where policies read them');
});

t.test('manifests with --pull-secrets and --self-managed-certs add exactly the permissions they need', async (t) => {
  const render = async (...flags: string[]) => parseAllDocuments((await run(process.execPath, ['--import', 'tsx', `${root}src/cli.ts`, 'manifests', '--namespace', 'tg', '--policies', `${root}policies`, ...flags])).stdout).map((d) => d.toJS());
  const plain = await render();
  const secretRules = (objects: any[]) => objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role').flatMap((r) => r.rules.filter((x: any) => x.resources.includes('secrets')).map((x: any) => ({ kind: r.kind, ...x })));
  t.same(secretRules(plain), [], 'no access to Secrets by default');

  const pulls = await render('--pull-secrets');
  t.same(secretRules(pulls), [{ kind: 'ClusterRole', apiGroups: [''], resources: ['secrets', 'serviceaccounts'], verbs: ['get'] }]);
  t.ok(pulls.find((o) => o.kind === 'Deployment').spec.template.spec.containers[0].args.includes('--pull-secrets'));

  const managed = await render('--self-managed-certs');
  t.same(secretRules(managed), [
    { kind: 'Role', apiGroups: [''], resources: ['secrets'], resourceNames: ['trustgate-ca'], verbs: ['get'] },
    { kind: 'Role', apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
  ], 'its own CA Secret only, in its own namespace');
  const role = managed.find((o) => o.kind === 'Role' && o.metadata.name === 'trustgate-certificates');
  t.equal(role.metadata.namespace, 'tg');
  t.match(role.rules, [{}, {}, { resources: ['leases'], resourceNames: ['trustgate-ca-bundle'], verbs: ['get', 'update'] }, { resources: ['leases'], verbs: ['create'] }]);
  const pod = managed.find((o) => o.kind === 'Deployment').spec.template.spec;
  t.match(pod.containers[0].args, ['serve', '--policies', '/app/policies', '--self-managed-certs', '--cert-dir', '/certs']);
  t.notOk(pod.containers[0].args.includes('--tls-cert'));
  t.same(pod.volumes.find((v: any) => v.name === 'certs'), { name: 'certs', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } }, 'serving keys stay in the pod, in memory');
  t.match(pod.containers[0].env, [{ name: 'TRUSTGATE_REPLICA' }, { name: 'NODE_OPTIONS', value: '--max-semi-space-size=4 --max-old-space-size=384' }, { name: 'MALLOC_ARENA_MAX', value: '1' }, { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } }]);
});

t.test('manifests --client-ca-file mounts the API server\'s client CA from a ConfigMap and passes --client-ca', async (t) => {
  const render = async (...flags: string[]) => parseAllDocuments((await run(process.execPath, ['--import', 'tsx', `${root}src/cli.ts`, 'manifests', '--namespace', 'tg', '--policies', `${root}policies`, ...flags])).stdout).map((d) => d.toJS());
  const caFile = `${root}test/fixtures/sigstore/cosign-legacy/sigstore-rs-2021/keyless.cert.pem`;
  const objects = await render('--client-ca-file', caFile, '--client-name', 'kube-apiserver');
  const configMap = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'trustgate-client-ca');
  t.equal(configMap.metadata.namespace, 'tg');
  t.equal(configMap.data['ca.crt'], await readFile(caFile, 'utf8'));
  const pod = objects.find((o) => o.kind === 'Deployment').spec.template.spec;
  const args: string[] = pod.containers[0].args;
  t.same(args.slice(args.indexOf('--client-ca'), args.indexOf('--client-ca') + 4), ['--client-ca', '/client-ca/ca.crt', '--client-name', 'kube-apiserver']);
  t.same(pod.volumes.find((v: any) => v.name === 'client-ca'), { name: 'client-ca', configMap: { name: 'trustgate-client-ca' } });
  t.match(pod.containers[0].volumeMounts, [{}, {}, {}, { name: 'client-ca', mountPath: '/client-ca', readOnly: true }]);
  t.notMatch(JSON.stringify(objects), /"secrets"/, 'still no access to Secrets');
  const cli = ['--import', 'tsx', `${root}src/cli.ts`, 'manifests', '--policies', `${root}policies`];
  const lonely = await run(process.execPath, [...cli, '--client-name', 'x']).catch((e) => e as { code: number; stderr: string });
  t.match((lonely as { stderr: string }).stderr, /--client-name needs --client-ca-file/);
  const notPem = await run(process.execPath, [...cli, '--client-ca-file', `${root}package.json`]).catch((e) => e as { code: number; stderr: string });
  t.match((notPem as { stderr: string }).stderr, /not a PEM certificate/);
});

t.test('manifests --audit-signing-secret mounts the signing key from a Secret made by hand, readable by the pod\'s group only', async (t) => {
  const render = async (...flags: string[]) => parseAllDocuments((await run(process.execPath, ['--import', 'tsx', `${root}src/cli.ts`, 'manifests', '--namespace', 'tg', '--policies', `${root}policies`, ...flags])).stdout).map((d) => d.toJS());
  const objects = await render('--audit-signing-secret', 'trustgate-audit-signing');
  t.notOk(objects.some((o) => o.kind === 'Secret'), 'the private key is never rendered');
  const pod = objects.find((o) => o.kind === 'Deployment').spec.template.spec;
  const args: string[] = pod.containers[0].args;
  t.same(args.slice(args.indexOf('--audit-signing-key'), args.indexOf('--audit-signing-key') + 2), ['--audit-signing-key', '/audit-signing/audit-signing.key']);
  t.same(pod.volumes.find((v: any) => v.name === 'audit-signing'), { name: 'audit-signing', secret: { secretName: 'trustgate-audit-signing', defaultMode: 0o440, items: [{ key: 'audit-signing.key', path: 'audit-signing.key' }] } });
  t.match(pod.containers[0].volumeMounts.at(-1), { name: 'audit-signing', mountPath: '/audit-signing', readOnly: true });
  t.equal(pod.securityContext.fsGroup, 65532, 'the group the key is readable by');
  t.notMatch(JSON.stringify(objects.filter((o) => /Role/.test(o.kind))), /"secrets"/, 'mounting needs no RBAC on Secrets');
  const bad = await run(process.execPath, ['--import', 'tsx', `${root}src/cli.ts`, 'manifests', '--policies', `${root}policies`, '--audit-signing-secret', 'Not_A_Name']).catch((e) => e as { code: number; stderr: string });
  t.equal((bad as { code: number }).code, 2);
  t.match((bad as { stderr: string }).stderr, /--audit-signing-secret "Not_A_Name" is not a Secret name/);
});

t.test('manifests --scan-schedule: a CronJob scanning the cluster with an account that may list only what the webhook rules cover', async (t) => {
  const render = async (...flags: string[]) => parseAllDocuments((await run(process.execPath, ['--import', 'tsx', `${root}src/cli.ts`, 'manifests', '--namespace', 'tg', '--policies', `${root}policies`, ...flags])).stdout).map((d) => d.toJS());
  const objects = await render('--scan-schedule', '17 * * * *');
  const cron = objects.find((o) => o.kind === 'CronJob');
  t.match(cron, { metadata: { name: 'trustgate-scan', namespace: 'tg' }, spec: { schedule: '17 * * * *', concurrencyPolicy: 'Forbid', jobTemplate: { spec: { backoffLimit: 0 } } } });
  const pod = cron.spec.jobTemplate.spec.template.spec;
  t.same(pod.containers[0].args, ['scan', '--in-cluster', '--policies', '/app/policies', '--format', 'json']);
  t.equal(pod.serviceAccountName, 'trustgate-scan');
  t.match(pod.containers[0].securityContext, { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
  const role = objects.find((o) => o.kind === 'ClusterRole' && o.metadata.name === 'trustgate-scan');
  const grants = role.rules.flatMap((r: { apiGroups: string[]; resources: string[]; verbs: string[] }) => r.resources.map((res) => `${r.apiGroups.join(',')}/${res}:${r.verbs.join(',')}`));
  t.ok(grants.includes('/pods:list') && grants.includes('apps/deployments:list') && grants.includes('source.toolkit.fluxcd.io/ocirepositories:list'), 'list on what the webhook covers');
  t.ok(grants.includes('/namespaces:get,list,watch'), 'namespaces, for namespaceSelector');
  t.notOk(grants.some((g: string) => /secrets|\*|create|update|patch|delete/.test(g)), 'nothing else: no Secrets, no writes, no wildcards');
  t.equal(new Set(grants).size, grants.length, 'each grant once');
  t.ok(objects.some((o) => o.kind === 'NetworkPolicy' && o.metadata.name === 'trustgate-scan' && o.spec.ingress.length === 0), 'nothing may call the scan');
  t.same(pod.volumes, undefined, 'no spool without audit sinks beyond stdout');
  const audited = (await render('--scan-schedule', '@daily', '--audit', 'stdout', '--audit', 'postgres://audit@db/trustgate')).find((o) => o.kind === 'CronJob').spec.jobTemplate.spec.template.spec;
  t.same(audited.containers[0].args.slice(6), ['--audit', 'postgres://audit@db/trustgate'], "the webhook's sinks but stdout (the job's log has the findings)");
  t.same([audited.containers[0].volumeMounts, audited.volumes], [[{ name: 'tmp', mountPath: '/tmp' }], [{ name: 'tmp', emptyDir: { sizeLimit: '256Mi' } }]], 'a writable spool under a read-only root');
  t.notOk((await render()).some((o) => /scan/.test(o.metadata.name)), 'nothing of it without the flag');
  const bad = await run(process.execPath, ['--import', 'tsx', `${root}src/cli.ts`, 'manifests', '--policies', `${root}policies`, '--scan-schedule', 'hourly']).catch((e) => e as { code: number; stderr: string });
  t.equal((bad as { code: number }).code, 2);
  t.match((bad as { stderr: string }).stderr, /--scan-schedule "hourly" is not a cron schedule/);
  // --scan-policy-reports: the reports go into the cluster, and the account may write exactly those
  const reporting = await render('--scan-schedule', '@daily', '--scan-policy-reports');
  t.same(reporting.find((o) => o.kind === 'CronJob').spec.jobTemplate.spec.template.spec.containers[0].args, ['scan', '--in-cluster', '--policies', '/app/policies', '--format', 'json', '--policy-reports']);
  const reportRole = reporting.find((o) => o.kind === 'ClusterRole' && o.metadata.name === 'trustgate-scan');
  const writes = reportRole.rules.filter((r: { verbs: string[] }) => r.verbs.some((v) => v !== 'get' && v !== 'list' && v !== 'watch'));
  t.same(writes, [{ apiGroups: ['wgpolicyk8s.io'], resources: ['policyreports', 'clusterpolicyreports'], verbs: ['get', 'list', 'create', 'update', 'delete'] }], 'writes to policy reports, and nothing else');
  const open = (await render('--scan-schedule', '@daily', '--scan-policy-reports', '--report-api', 'openreports.io'));
  t.same(open.find((o) => o.kind === 'CronJob').spec.jobTemplate.spec.template.spec.containers[0].args.slice(-3), ['--policy-reports', '--report-api', 'openreports.io']);
  t.match(open.find((o) => o.kind === 'ClusterRole' && o.metadata.name === 'trustgate-scan').rules.at(-1), { apiGroups: ['openreports.io'], resources: ['reports', 'clusterreports'] });
  const orphan = await run(process.execPath, ['--import', 'tsx', `${root}src/cli.ts`, 'manifests', '--policies', `${root}policies`, '--scan-policy-reports']).catch((e) => e as { code: number; stderr: string });
  t.match((orphan as { stderr: string }).stderr, /--scan-policy-reports needs --scan-schedule/);
});

t.test('manifests refuses nonsense and warns about a single replica', async (t) => {
  const cli = ['--import', 'tsx', `${root}src/cli.ts`, 'manifests'];
  const bad = await run(process.execPath, [...cli, '--timeout-seconds', '60']).catch((e) => e as { code: number; stderr: string });
  t.equal((bad as { code: number }).code, 2);
  t.match(bad.stderr, /--timeout-seconds must be 1 to 30/);
  const one = await run(process.execPath, [...cli, '--replicas', '1', '--policies', `${root}policies`]);
  t.match(one.stderr, /one replica cannot survive a node loss/);
});

t.test('manifests: ConfigMap params from each request\'s namespace are readable by name only; a selector needs every ConfigMap', async (t) => {
  const { policyDir, policyYaml, POD_RULE } = await import('../helpers/policies.js');
  const policy = (name: string, configMap: string) => policyYaml(name, `${POD_RULE}\nparams:\n  configMap: ${configMap}\nvalidations:\n  - expression: "params.data.x == 'y'"`);
  let stderr = '';
  const render = async (files: Record<string, string>) => {
    const out = await run(process.execPath, ['--import', 'tsx', `${root}src/cli.ts`, 'manifests', '--namespace', 'tg', '--policies', await policyDir(files)]);
    stderr = out.stderr;
    return parseAllDocuments(out.stdout).map((d) => d.toJS());
  };
  const configMapRules = (objects: any[]) => objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role').flatMap((r) => r.rules.filter((x: any) => x.resources.includes('configmaps')).map((x: any) => ({ kind: r.kind, ...x })));
  const named = await render({ 'a.yaml': policy('a', '{ name: limits }'), 'b.yaml': policy('b', '{ name: defaults }'), 'c.yaml': policy('c', '{ namespace: shop, name: fixed }') });
  t.equal(stderr, '', 'names alone need no warning');
  t.same(configMapRules(named), [
    { kind: 'ClusterRole', apiGroups: [''], resources: ['configmaps'], resourceNames: ['defaults', 'limits'], verbs: ['get', 'list', 'watch'] },
    { kind: 'Role', apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] },
  ]);
  t.equal(named.find((o) => o.kind === 'Role' && o.metadata.name === 'trustgate-configmaps').metadata.namespace, 'shop');
  const selected = await render({ 'a.yaml': policy('a', '{ selector: { matchLabels: { tier: params } } }') });
  t.same(configMapRules(selected), [{ kind: 'ClusterRole', apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] }], 'RBAC cannot narrow a label selector');
  t.match(stderr, /warning: a select params ConfigMaps by label in each request's namespace, so the ClusterRole reads every ConfigMap in the cluster/, 'and says so');
  const custom = await render({ 'vap.yaml': `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: { name: replicas }
spec:
  paramKind: { apiVersion: rules.example.com/v1, kind: ReplicaLimit }
  matchConstraints: { resourceRules: [{ apiGroups: [apps], apiVersions: [v1], operations: [CREATE], resources: [deployments] }] }
  validations: [{ expression: object.spec.replicas <= params.maxReplicas }]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: { name: b }
spec: { policyName: replicas, validationActions: [Deny], paramRef: { name: standard } }
` });
  const clusterRole = custom.find((o) => o.kind === 'ClusterRole');
  t.same(clusterRole.rules.filter((r: any) => r.apiGroups.includes('rules.example.com')), [{ apiGroups: ['rules.example.com'], resources: ['replicalimits'], verbs: ['get', 'list', 'watch'] }], 'a custom params kind: read-only, its own resource only');
  const reviews = (objects: any[]) => objects.find((o) => o.kind === 'ClusterRole').rules.filter((r: any) => r.apiGroups.includes('authorization.k8s.io'));
  t.same(reviews(custom), [], 'no SubjectAccessReviews without authorization checks');
  const checking = await render({ 'a.yaml': policyYaml('a', `${POD_RULE}\nvalidations:\n  - expression: "authorizer.group('').resource('pods').namespace(object.metadata.namespace).check('delete').allowed()"`) });
  t.same(reviews(checking), [{ apiGroups: ['authorization.k8s.io'], resources: ['subjectaccessreviews'], verbs: ['create'] }], 'policies that check authorization may create SubjectAccessReviews');
});
