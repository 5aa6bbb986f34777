export { StaticNamespaces, readNamespacesFile } from './namespaces-file.js';
export { ClusterState, loadKubeConfig } from './cluster.js';
