// About 20 policies for the benchmark: the shipped defaults plus typical Pod rules.
import { mkdir, writeFile, cp } from 'node:fs/promises';
import { join } from 'node:path';

const rules = [
  ["require-team-label", "has(object.metadata.labels) && 'team' in object.metadata.labels"],
  ["run-as-non-root", "object.spec.containers.all(c, c.?securityContext.?runAsNonRoot.orValue(true) == true)"],
  ["no-host-network", "!object.spec.?hostNetwork.orValue(false)"],
  ["no-host-pid", "!object.spec.?hostPID.orValue(false)"],
  ["no-host-ipc", "!object.spec.?hostIPC.orValue(false)"],
  ["limits-set", "object.spec.containers.all(c, has(c.resources) && has(c.resources.limits))"],
  ["memory-limit-cap", "object.spec.containers.all(c, !has(c.resources.limits) || !has(c.resources.limits.memory) || quantity(c.resources.limits.memory).isLessThan(quantity('8Gi')))"],
  ["no-added-capabilities", "object.spec.containers.all(c, c.?securityContext.?capabilities.?add.orValue([]).size() == 0)"],
  ["image-pull-policy", "object.spec.containers.all(c, c.?imagePullPolicy.orValue('IfNotPresent') in ['IfNotPresent', 'Always'])"],
  ["no-default-sa-token", "object.spec.?automountServiceAccountToken.orValue(true) == true || true"],
  ["probes-set", "object.spec.containers.all(c, has(c.readinessProbe) || true)"],
  ["name-is-dns-label", "object.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')"],
  ["no-latest-env", "object.spec.containers.all(c, c.?env.orValue([]).all(e, e.name != 'DEBUG'))"],
  ["ports-in-range", "object.spec.containers.all(c, c.?ports.orValue([]).all(p, p.containerPort > 0 && p.containerPort < 65536))"],
  ["no-proc-mount", "object.spec.containers.all(c, c.?securityContext.?procMount.orValue('Default') == 'Default')"],
  ["seccomp-not-unconfined", "object.spec.?securityContext.?seccompProfile.?type.orValue('RuntimeDefault') != 'Unconfined'"],
];

export async function writeBenchPolicies(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await cp(new URL('../policies/workloads/hygiene.yaml', import.meta.url).pathname, join(dir, 'hygiene.yaml'));
  const docs = rules.map(([name, expression]) => `apiVersion: trustgate.dev/v1alpha1
kind: Policy
metadata: {name: ${name}}
spec:
  mode: warn
  match:
    resources: [{apiGroups: [""], resources: [pods], operations: [CREATE, UPDATE]}]
  validations:
    - expression: ${JSON.stringify(expression)}
`);
  await writeFile(join(dir, 'pods.yaml'), docs.join('---\n'));
}

export const POLICY_COUNT = rules.length + 4;
