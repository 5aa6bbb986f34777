// How server-side apply merges the lists of the built-in kinds a MutatingAdmissionPolicy most
// often changes (the markers of k8s.io/api: +listType, +listMapKey). A list not named here is
// atomic, as Kubernetes takes any list without a list type (and a CRD's without
// x-kubernetes-list-type), so an apply configuration may not change it: the mutation fails
// rather than merge differently from the API server.

export type ListType = { type: 'map'; keys: readonly string[]; defaults?: Readonly<Record<string, unknown>> } | { type: 'set' };

const byName: ListType = { type: 'map', keys: ['name'] };

/** lists of a container, by field path below it */
const CONTAINER_LISTS: Record<string, ListType> = {
  env: byName,
  ports: { type: 'map', keys: ['containerPort', 'protocol'], defaults: { protocol: 'TCP' } },
  volumeMounts: { type: 'map', keys: ['mountPath'] },
  volumeDevices: { type: 'map', keys: ['devicePath'] },
  'resources.claims': byName,
};

/** lists of a pod spec, by field path below it */
const POD_SPEC_LISTS: Record<string, ListType> = {
  volumes: byName,
  imagePullSecrets: byName,
  hostAliases: { type: 'map', keys: ['ip'] },
  topologySpreadConstraints: { type: 'map', keys: ['topologyKey', 'whenUnsatisfiable'] },
  resourceClaims: byName,
  schedulingGates: byName,
};
for (const c of ['containers', 'initContainers', 'ephemeralContainers']) {
  POD_SPEC_LISTS[c] = byName;
  for (const [path, t] of Object.entries(CONTAINER_LISTS)) POD_SPEC_LISTS[`${c}.${path}`] = t;
}

/** lists of any object's metadata (a pod template's too) */
const METADATA_LISTS: Record<string, ListType> = {
  finalizers: { type: 'set' },
  ownerReferences: { type: 'map', keys: ['uid'] },
};

/** where the pod spec is, by kind */
const POD_SPEC_AT: Record<string, string> = {
  Pod: 'spec',
  PodTemplate: 'template.spec',
  Deployment: 'spec.template.spec',
  ReplicaSet: 'spec.template.spec',
  StatefulSet: 'spec.template.spec',
  DaemonSet: 'spec.template.spec',
  ReplicationController: 'spec.template.spec',
  Job: 'spec.template.spec',
  CronJob: 'spec.jobTemplate.spec.template.spec',
};

const OTHER_LISTS: Record<string, Record<string, ListType>> = {
  Service: { 'spec.ports': { type: 'map', keys: ['port', 'protocol'], defaults: { protocol: 'TCP' } } },
};

/**
 * Structs and maps the API replaces whole (+structType=atomic, +mapType=atomic): a workload's
 * label selector and a Service's selector, and label selectors wherever they appear.
 */
export function isAtomicMap(kind: string, path: string): boolean {
  const last = path.slice(path.lastIndexOf('.') + 1);
  return (path === 'spec.selector' && (kind === 'Service' || Object.hasOwn(POD_SPEC_AT, kind) || kind === 'Job')) || last === 'labelSelector' || last === 'namespaceSelector';
}

/** The list type at a field path (names only, no indexes: "spec.containers.env"), undefined for atomic. */
export function listTypeAt(kind: string, path: string): ListType | undefined {
  const metadata = /(?:^|\.)metadata\.([^.]+)$/.exec(path);
  if (metadata && Object.hasOwn(METADATA_LISTS, metadata[1]!)) return METADATA_LISTS[metadata[1]!];
  const root = Object.hasOwn(POD_SPEC_AT, kind) ? POD_SPEC_AT[kind]! : undefined;
  if (root && path.startsWith(`${root}.`)) {
    const rest = path.slice(root.length + 1);
    if (Object.hasOwn(POD_SPEC_LISTS, rest)) return POD_SPEC_LISTS[rest];
  }
  const other = Object.hasOwn(OTHER_LISTS, kind) ? OTHER_LISTS[kind]! : undefined;
  return other && Object.hasOwn(other, path) ? other[path] : undefined;
}
