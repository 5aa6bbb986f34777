export { StaticCluster, readClusterFile } from './cluster-file.js';
export { ClusterState, loadKubeConfig } from './cluster.js';
export { PullSecretReader, credentialsOfSecret } from './pull-secrets.js';
export { SelfManagedCertificates, type SelfManagedOptions } from './self-managed-certs.js';
export { SubjectAccessReviewAuthorizer, subjectAccessReview } from './authorizer.js';
export { liveObjects, syncedClusterState, withServedResources } from './live-objects.js';
export { writePolicyReports, PolicyReportWriteError } from './policy-reports.js';
