// Resource rules that can never match, caught at load: `resources: [pod]`, `kinds: [pod]`,
// `apiGroups: [core]` or `[apps/v1]` load fine and then silently enforce nothing, the worst way
// for an admission policy to fail. Checked against the API groups built into Kubernetes (1.34)
// and Flux's; a group trustgate does not know (a CRD's) is checked only for what no group can
// serve (upper-case resources, lower-case kinds). Warnings, not errors: a newer server may
// serve what this table lacks, and a policy must not stop loading because of it.
import { didYouMean } from '../did-you-mean.js';
import type { PolicySpec, PolicyWarning, ResourceRule } from './types.js';

/** group → resource → kind */
const BUILT_IN: Record<string, Record<string, string>> = {
  '': {
    bindings: 'Binding', componentstatuses: 'ComponentStatus', configmaps: 'ConfigMap', endpoints: 'Endpoints', events: 'Event',
    limitranges: 'LimitRange', namespaces: 'Namespace', nodes: 'Node', persistentvolumeclaims: 'PersistentVolumeClaim',
    persistentvolumes: 'PersistentVolume', pods: 'Pod', podtemplates: 'PodTemplate', replicationcontrollers: 'ReplicationController',
    resourcequotas: 'ResourceQuota', secrets: 'Secret', serviceaccounts: 'ServiceAccount', services: 'Service',
  },
  apps: { controllerrevisions: 'ControllerRevision', daemonsets: 'DaemonSet', deployments: 'Deployment', replicasets: 'ReplicaSet', statefulsets: 'StatefulSet' },
  batch: { cronjobs: 'CronJob', jobs: 'Job' },
  autoscaling: { horizontalpodautoscalers: 'HorizontalPodAutoscaler' },
  policy: { poddisruptionbudgets: 'PodDisruptionBudget', evictions: 'Eviction' },
  'networking.k8s.io': { ingresses: 'Ingress', ingressclasses: 'IngressClass', networkpolicies: 'NetworkPolicy', ipaddresses: 'IPAddress', servicecidrs: 'ServiceCIDR' },
  'rbac.authorization.k8s.io': { clusterrolebindings: 'ClusterRoleBinding', clusterroles: 'ClusterRole', rolebindings: 'RoleBinding', roles: 'Role' },
  'storage.k8s.io': {
    csidrivers: 'CSIDriver', csinodes: 'CSINode', csistoragecapacities: 'CSIStorageCapacity', storageclasses: 'StorageClass',
    volumeattachments: 'VolumeAttachment', volumeattributesclasses: 'VolumeAttributesClass',
  },
  'admissionregistration.k8s.io': {
    mutatingwebhookconfigurations: 'MutatingWebhookConfiguration', validatingwebhookconfigurations: 'ValidatingWebhookConfiguration',
    validatingadmissionpolicies: 'ValidatingAdmissionPolicy', validatingadmissionpolicybindings: 'ValidatingAdmissionPolicyBinding',
    mutatingadmissionpolicies: 'MutatingAdmissionPolicy', mutatingadmissionpolicybindings: 'MutatingAdmissionPolicyBinding',
  },
  'apiextensions.k8s.io': { customresourcedefinitions: 'CustomResourceDefinition' },
  'apiregistration.k8s.io': { apiservices: 'APIService' },
  'certificates.k8s.io': { certificatesigningrequests: 'CertificateSigningRequest', clustertrustbundles: 'ClusterTrustBundle' },
  'coordination.k8s.io': { leases: 'Lease', leasecandidates: 'LeaseCandidate' },
  'discovery.k8s.io': { endpointslices: 'EndpointSlice' },
  'events.k8s.io': { events: 'Event' },
  'flowcontrol.apiserver.k8s.io': { flowschemas: 'FlowSchema', prioritylevelconfigurations: 'PriorityLevelConfiguration' },
  'node.k8s.io': { runtimeclasses: 'RuntimeClass' },
  'scheduling.k8s.io': { priorityclasses: 'PriorityClass' },
  'resource.k8s.io': { deviceclasses: 'DeviceClass', resourceclaims: 'ResourceClaim', resourceclaimtemplates: 'ResourceClaimTemplate', resourceslices: 'ResourceSlice' },
  'source.toolkit.fluxcd.io': {
    gitrepositories: 'GitRepository', ocirepositories: 'OCIRepository', helmrepositories: 'HelmRepository', helmcharts: 'HelmChart',
    buckets: 'Bucket', externalartifacts: 'ExternalArtifact',
  },
  'kustomize.toolkit.fluxcd.io': { kustomizations: 'Kustomization' },
  'helm.toolkit.fluxcd.io': { helmreleases: 'HelmRelease' },
  'notification.toolkit.fluxcd.io': { alerts: 'Alert', providers: 'Provider', receivers: 'Receiver' },
  'image.toolkit.fluxcd.io': { imagerepositories: 'ImageRepository', imagepolicies: 'ImagePolicy', imageupdateautomations: 'ImageUpdateAutomation' },
};

const SUBRESOURCES = ['status', 'scale', 'exec', 'attach', 'portforward', 'log', 'binding', 'eviction', 'ephemeralcontainers', 'proxy', 'resize', 'token', 'finalize', 'approval'];

const ALL_GROUPS = Object.keys(BUILT_IN);
const KIND_OF = new Map<string, { group: string; resource: string }[]>();
for (const [group, resources] of Object.entries(BUILT_IN)) {
  for (const [resource, kind] of Object.entries(resources)) KIND_OF.set(kind, [...(KIND_OF.get(kind) ?? []), { group, resource }]);
}


/** the plural a singular was meant as ("pod" → "pods", "gitrepository" → "gitrepositories"), else the nearest name */
function meantResource(resource: string, resources: readonly string[]): string {
  const plural = [`${resource}s`, `${resource}es`, resource.replace(/y$/, 'ies')].find((p) => resources.includes(p));
  return plural ? ` (did you mean "${plural}"?)` : didYouMean(resource, resources);
}

const groupName = (g: string) => (g === '' ? 'the core group ("")' : `group "${g}"`);
const groupsName = (groups: readonly string[]) => groups.map(groupName).join(', ');

/** An apiGroups entry that is certainly a mistake, and what was meant. */
function groupMistake(group: string): string | undefined {
  if (group === '*' || Object.hasOwn(BUILT_IN, group)) return undefined;
  if (group === 'core' || group === 'v1') return `"${group}" is not an API group: the core group (pods, services …) is ""`;
  if (group.includes('/')) return `apiGroups name groups without their versions ("${group.split('/')[0]}"; versions go in apiVersions)`;
  const near = didYouMean(group, ALL_GROUPS);
  // a CRD's group is unknown here; only a near miss of a built-in one is flagged
  return near ? `"${group}" is not a built-in API group${near}; a group no server serves never matches` : undefined;
}

/** Warnings for one resource rule of match.resources. */
function ruleWarnings(rule: PolicySpec['match']['resources'][number], at: (string | number)[]): PolicyWarning[] {
  const warnings: PolicyWarning[] = [];
  const groups = rule.apiGroups ?? ['*'];
  for (const [i, g] of groups.entries()) {
    const mistake = groupMistake(g);
    if (mistake) warnings.push({ path: [...at, 'apiGroups', i], message: mistake });
  }
  // the rule's resources are checked against its groups only when every group is one we know
  // own keys only: a custom group named like an Object.prototype member is not a built-in one
  const known = groups.every((g) => Object.hasOwn(BUILT_IN, g)) ? groups : undefined;
  const servedBy = (resource: string) => known?.some((g) => Object.hasOwn(BUILT_IN[g]!, resource));
  const resourcesOf = () => known!.flatMap((g) => Object.keys(BUILT_IN[g]!));
  for (const [i, pattern] of (rule.resources ?? []).entries()) {
    const [resource = '', sub] = pattern.split('/');
    const path = [...at, 'resources', i];
    if (resource !== '*' && resource !== resource.toLowerCase()) {
      const meant = KIND_OF.get(resource)?.[0];
      const hint = meant ? ` (did you mean "${meant.resource}${sub ? `/${sub}` : ''}", or kinds: ["${resource}"]?)` : '';
      warnings.push({ path, message: `resource "${pattern}" never matches: resources are lower-case plurals${hint}` });
    } else if (resource !== '*' && known && !servedBy(resource)) {
      warnings.push({ path, message: `resource "${resource}" is not served by ${groupsName(known)}${meantResource(resource, resourcesOf())}, so this rule never matches it (trustgate knows the groups of Kubernetes 1.34 and Flux; ignore this if your server serves it)` });
    }
    if (sub !== undefined && sub !== '*' && !SUBRESOURCES.includes(sub)) {
      warnings.push({ path, message: `subresource "${sub}" is not one Kubernetes serves${didYouMean(sub, SUBRESOURCES)}` });
    }
  }
  for (const [i, pattern] of (rule.kinds ?? []).entries()) {
    const kind = pattern.split('/')[0]!;
    if (kind === '*') continue;
    const path = [...at, 'kinds', i];
    if (kind[0] !== kind[0]!.toUpperCase()) {
      const meant = [...KIND_OF.keys()].find((k) => k.toLowerCase() === kind.toLowerCase() || `${k.toLowerCase()}s` === kind.toLowerCase());
      warnings.push({ path, message: `kind "${kind}" never matches: kinds are CamelCase singulars${meant ? ` (did you mean "${meant}"?)` : ''}` });
    } else if (known && !known.some((g) => Object.values(BUILT_IN[g]!).includes(kind))) {
      const elsewhere = KIND_OF.get(kind)?.map((k) => k.group);
      const hint = elsewhere ? ` (${kind} is in ${groupsName(elsewhere)})` : didYouMean(kind, known.flatMap((g) => Object.values(BUILT_IN[g]!)));
      warnings.push({ path, message: `kind "${kind}" is not served by ${groupsName(known)}${hint}, so this rule never matches it` });
    }
  }
  return warnings;
}

/**
 * The built-in kinds a policy's resource rules match, or undefined when they may match others
 * (a wildcard, a group trustgate does not know): then nothing can be said of every kind.
 */
export function builtInKindsMatched(rules: readonly ResourceRule[]): string[] | undefined {
  const kinds = new Set<string>();
  for (const rule of rules) {
    const groups = rule.apiGroups ?? ['*'];
    if (!groups.every((g) => Object.hasOwn(BUILT_IN, g))) return undefined;
    for (const pattern of rule.resources ?? []) {
      const resource = pattern.split('/')[0]!;
      if (resource === '*') return undefined;
      for (const g of groups) if (Object.hasOwn(BUILT_IN[g]!, resource)) kinds.add(BUILT_IN[g]![resource]!);
    }
    for (const pattern of rule.kinds ?? []) {
      const kind = pattern.split('/')[0]!;
      if (kind === '*') return undefined;
      kinds.add(kind);
    }
  }
  return [...kinds];
}

/** Resource rules of a policy's match that cannot match what they name. */
export function matchWarnings(match: PolicySpec['match']): PolicyWarning[] {
  // an exclusion that never matches excludes nothing; a binding's rule that never matches enforces nothing
  return (['resources', 'excludeResources', 'bindingResources'] as const).flatMap((list) =>
    (match[list] ?? []).flatMap((rule, i) => ruleWarnings(rule, ['spec', 'match', list, i])));
}

/** Built-in resources that live outside namespaces: their requests carry no namespace. */
const CLUSTER_SCOPED = new Set([
  'namespaces', 'nodes', 'persistentvolumes', 'componentstatuses', 'clusterroles', 'clusterrolebindings', 'storageclasses', 'csidrivers',
  'csinodes', 'volumeattachments', 'volumeattributesclasses', 'mutatingwebhookconfigurations', 'validatingwebhookconfigurations',
  'validatingadmissionpolicies', 'validatingadmissionpolicybindings', 'mutatingadmissionpolicies', 'mutatingadmissionpolicybindings',
  'customresourcedefinitions', 'apiservices', 'certificatesigningrequests', 'clustertrustbundles', 'flowschemas',
  'prioritylevelconfigurations', 'runtimeclasses', 'priorityclasses', 'deviceclasses', 'resourceslices', 'ingressclasses', 'ipaddresses', 'servicecidrs',
]);
const CLUSTER_SCOPED_KINDS = new Set(Object.values(BUILT_IN).flatMap((resources) => Object.entries(resources).filter(([r]) => CLUSTER_SCOPED.has(r)).map(([, k]) => k)));

/** What cluster-scoped objects a rule can match ('*' and scope: Cluster included), or undefined for none trustgate knows of. */
function clusterScopedMatch(rule: ResourceRule): string | undefined {
  if (rule.scope === 'Namespaced') return undefined;
  if (rule.scope === 'Cluster') return 'scope: Cluster';
  const names = [...(rule.resources ?? []).map((r) => r.split('/')[0]!), ...(rule.kinds ?? []).map((k) => k.split('/')[0]!)];
  if (names.includes('*')) return 'every resource, cluster-scoped ones included';
  const found = names.filter((n) => CLUSTER_SCOPED.has(n) || CLUSTER_SCOPED_KINDS.has(n));
  return found.length ? found.join(', ') : undefined;
}

/**
 * Params read from the namespace of each request (a ConfigMap named without a namespace) and a
 * rule that matches cluster-scoped objects: those requests have no namespace to read from, and
 * fail by failurePolicy (Kubernetes warns of the same).
 */
export function paramsScopeWarnings(spec: PolicySpec): PolicyWarning[] {
  const cm = spec.params?.configMap;
  if (!cm || cm.namespace !== undefined) return [];
  // a binding's rules narrow the policy's: only when both can match cluster-scoped objects
  const binding = spec.match.bindingResources;
  if (binding?.length && !binding.some(clusterScopedMatch)) return [];
  return spec.match.resources.flatMap((rule, i) => {
    const what = clusterScopedMatch(rule);
    return what ? [{
      path: ['spec', 'match', 'resources', i],
      message: `params are read from the namespace of each request, but this rule matches ${what}, whose requests have no namespace: they fail by failurePolicy (add scope: Namespaced, or name the params' namespace)`,
    }] : [];
  });
}
