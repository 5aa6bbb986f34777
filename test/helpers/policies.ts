// Writes policy files into a temporary directory for a test.
import { mkdtemp, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export async function policyDir(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'trustgate-policies-'));
  for (const [name, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), text);
  }
  return dir;
}

/** A policy document with the usual header; spec is YAML text indented under spec:. */
export function policyYaml(name: string, spec: string): string {
  const body = spec.replace(/^\n/, '').split('\n').map((l) => (l ? `  ${l}` : l)).join('\n');
  return `apiVersion: trustgate.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: ${name}\nspec:\n${body}\n`;
}

/** A PolicyException document; spec is YAML text indented under spec:. */
export function exceptionYaml(name: string, spec: string): string {
  const body = spec.replace(/^\n/, '').replace(/\n$/, '').split('\n').map((l) => (l ? `  ${l}` : l)).join('\n');
  return `apiVersion: trustgate.dev/v1alpha1\nkind: PolicyException\nmetadata: { name: ${name} }\nspec:\n${body}\n`;
}

export const POD_RULE = `match:
  resources:
    - apiGroups: [""]
      resources: [pods]
      operations: [CREATE, UPDATE]`;

/** for scans: a warn-mode team label on Pods and Deployments */
export const TEAM_LABEL_WARN = policyYaml('team-label', `mode: warn
match:
  resources: [{ apiGroups: ["", apps], resources: [pods, deployments], operations: [CREATE] }]
validations:
  - expression: "'team' in object.metadata.?labels.orValue({})"
    message: needs a team label`);

/** for scans: Deployments in namespaces labelled env=prod run two replicas or more (enforced) */
export const PROD_REPLICAS = policyYaml('prod-replicas', `mode: enforce
match:
  resources: [{ apiGroups: [apps], resources: [deployments], operations: [CREATE] }]
  namespaceSelector: { matchLabels: { env: prod } }
validations:
  - expression: "object.spec.replicas >= 2"
    message: prod runs at least two replicas`);
