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

export const POD_RULE = `match:
  resources:
    - apiGroups: [""]
      resources: [pods]
      operations: [CREATE, UPDATE]`;
