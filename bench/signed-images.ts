// Shared by the image benchmarks: the CI identity the images are signed for, the images policy
// over the loopback registry with the private Sigstore's root, and waiting for a served trustgate.
import type { ChildProcess } from 'node:child_process';
import { request } from 'node:https';

export const CI = { subject: 'https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main', issuer: 'https://token.actions.githubusercontent.com' };

/** A TrustRoot `private` from rootFile and the policy signed-images over registry/acme/**. */
export function imagesPolicyYaml(registry: string, rootFile: string): string {
  return `apiVersion: trustgate.dev/v1alpha1
kind: TrustRoot
metadata: { name: private }
spec: { trustedRootFile: ${rootFile} }
---
apiVersion: trustgate.dev/v1alpha1
kind: Policy
metadata: { name: signed-images }
spec:
  match: { resources: [{ apiGroups: [""], resources: [pods], operations: [CREATE] }] }
  images:
    - match: ["${registry}/acme/**"]
      authorities: [{ name: ci, keyless: { trustRoot: private, identities: [{ issuer: "${CI.issuer}", subject: "${CI.subject}" }] } }]
`;
}

/** Resolves once /readyz answers 200; fails if the process exits first. */
export async function waitReady(child: ChildProcess, url: string, ca: Buffer): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const req = request(`${url}/readyz`, { ca, agent: false }, (res) => { res.resume(); resolve(res.statusCode === 200); });
      req.on('error', () => resolve(false));
      req.end();
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('server did not become ready');
}
