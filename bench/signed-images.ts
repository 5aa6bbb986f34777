// Shared by the image benchmarks: the CI identity the images are signed for, and the images
// policy over the loopback registry with the private Sigstore's root.

export { CI_IDENTITY as CI } from '../test/helpers/sigstore.js';
import { CI_IDENTITY as CI } from '../test/helpers/sigstore.js';

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
