export { StaticCluster, readClusterFile } from './cluster-file.js';
export { ClusterState, loadKubeConfig } from './cluster.js';
