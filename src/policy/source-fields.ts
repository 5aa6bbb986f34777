// Where source URLs live in the objects GitOps tools reconcile: Flux sources, Flux
// Kustomizations and HelmReleases (cross-namespace references), Argo CD Applications,
// ApplicationSets and AppProjects; other kinds through JSON pointers given in the policy.
import type { KubeObject } from '../admission/types.js';

export interface SourceReference {
  /** where it was found, for messages: spec.url, spec.sources[1].repoURL … */
  field: string;
  url: string;
  /** the URL names a namespace of sources (OCI HelmRepository, AppProject "org/*") */
  isPrefix: boolean;
}

export interface CrossNamespaceReference {
  field: string;
  namespace: string;
}

export interface CustomSourceFields {
  apiGroups?: string[];
  kinds: string[];
  pointers: string[];
  isPrefix?: boolean;
}

type Json = Record<string, unknown>;
const obj = (v: unknown): Json | undefined => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** Evaluates a JSON pointer in which '*' stands for every item of a list. */
export function pointerValues(root: unknown, pointer: string): { path: string; value: unknown }[] {
  const parts = pointer.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  let current: { path: string; value: unknown }[] = [{ path: '', value: root }];
  for (const part of parts) {
    const next: typeof current = [];
    for (const { path, value } of current) {
      if (part === '*' && Array.isArray(value)) value.forEach((v, i) => next.push({ path: `${path}[${i}]`, value: v }));
      else if (Array.isArray(value) && /^\d+$/.test(part)) next.push({ path: `${path}[${part}]`, value: value[Number(part)] });
      else if (obj(value) && Object.hasOwn(value as Json, part)) next.push({ path: path ? `${path}.${part}` : part, value: (value as Json)[part] });
    }
    current = next;
  }
  return current.filter((c) => c.value !== undefined && c.value !== null);
}

function argoSource(field: string, source: unknown): SourceReference[] {
  const s = obj(source);
  const url = str(s?.repoURL);
  if (!url) return [];
  // Argo CD writes OCI Helm repositories without a scheme (registry/path plus chart:)
  if (s?.chart && !url.includes('://') && !/^[^/]*@/.test(url)) return [{ field: `${field}.repoURL`, url: `oci://${url}`, isPrefix: true }];
  return [{ field: `${field}.repoURL`, url, isPrefix: Boolean(s?.chart) }];
}

function argoSources(prefix: string, spec: Json | undefined): SourceReference[] {
  const out = argoSource(`${prefix}.source`, spec?.source);
  const list = spec?.sources;
  if (Array.isArray(list)) list.forEach((s, i) => out.push(...argoSource(`${prefix}.sources[${i}]`, s)));
  return out;
}

/** Source URLs of an object of a kind trustgate knows, plus those the policy adds by pointer. */
export function sourceReferences(object: KubeObject, group: string, custom: readonly CustomSourceFields[] = []): SourceReference[] {
  const spec = obj(object.spec);
  const kind = object.kind ?? '';
  const out: SourceReference[] = [];
  if (group === 'source.toolkit.fluxcd.io') {
    switch (kind) {
      case 'GitRepository':
      case 'OCIRepository': {
        const url = str(spec?.url);
        if (url !== undefined) out.push({ field: 'spec.url', url, isPrefix: false });
        break;
      }
      case 'HelmRepository': {
        const url = str(spec?.url);
        // charts of an OCI HelmRepository resolve as url + "/" + name: the URL is a prefix
        if (url !== undefined) out.push({ field: 'spec.url', url, isPrefix: spec?.type === 'oci' || url.toLowerCase().startsWith('oci://') });
        break;
      }
      case 'Bucket': {
        const endpoint = str(spec?.endpoint);
        if (endpoint !== undefined) {
          const base = endpoint.includes('://') ? endpoint : `${spec?.insecure === true ? 'http' : 'https'}://${endpoint}`;
          out.push({ field: 'spec.endpoint', url: `${base.replace(/\/+$/, '')}/${str(spec?.bucketName) ?? ''}`, isPrefix: false });
        }
        break;
      }
    }
  } else if (group === 'argoproj.io') {
    if (kind === 'Application') out.push(...argoSources('spec', spec));
    if (kind === 'ApplicationSet') {
      out.push(...argoSources('spec.template.spec', obj(obj(spec?.template)?.spec)));
      for (const g of pointerValues(object, '/spec/generators/*/git/repoURL')) if (typeof g.value === 'string') out.push({ field: g.path, url: g.value, isPrefix: false });
    }
    if (kind === 'AppProject') {
      for (const r of pointerValues(object, '/spec/sourceRepos/*')) {
        if (typeof r.value !== 'string') continue;
        // "https://github.com/org/*" admits every repository below the org
        const glob = r.value.endsWith('/*');
        out.push({ field: r.path, url: glob ? r.value.slice(0, -1) : r.value, isPrefix: glob });
      }
    }
  }
  for (const c of custom) {
    if (!c.kinds.includes(kind) || (c.apiGroups && !c.apiGroups.includes(group) && !c.apiGroups.includes('*'))) continue;
    for (const p of c.pointers) {
      for (const v of pointerValues(object, p)) if (typeof v.value === 'string') out.push({ field: v.path, url: v.value, isPrefix: c.isPrefix ?? false });
    }
  }
  return out;
}

/** sourceRef / chartRef namespaces of Flux objects that differ from the object's own. */
export function crossNamespaceReferences(object: KubeObject, group: string, namespace: string): CrossNamespaceReference[] {
  const refs: { path: string; value: unknown }[] = [];
  if (group === 'kustomize.toolkit.fluxcd.io' && object.kind === 'Kustomization') refs.push(...pointerValues(object, '/spec/sourceRef'));
  if (group === 'helm.toolkit.fluxcd.io' && object.kind === 'HelmRelease') {
    refs.push(...pointerValues(object, '/spec/chart/spec/sourceRef'), ...pointerValues(object, '/spec/chartRef'));
  }
  if (group === 'image.toolkit.fluxcd.io' && object.kind === 'ImageUpdateAutomation') refs.push(...pointerValues(object, '/spec/sourceRef'));
  const out: CrossNamespaceReference[] = [];
  for (const r of refs) {
    const ns = str(obj(r.value)?.namespace);
    if (ns && ns !== namespace) out.push({ field: `${r.path}.namespace`, namespace: ns });
  }
  return out;
}
