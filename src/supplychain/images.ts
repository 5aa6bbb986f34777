// Every image an admitted object would run: containers, initContainers, ephemeralContainers of
// Pods and of the pod templates of every workload kind, each with the JSON pointer a digest
// pin would patch; plus Flux OCIRepository sources.
import type { KubeObject } from '../admission/types.js';

export interface ImageUse {
  image: string;
  /** JSON pointer of the image field, for a tag -> digest patch */
  pointer: string;
  /** where it came from, for messages: spec.template.spec.initContainers[0] */
  field: string;
  /** Flux OCIRepository spec.ref.semver: resolved to the highest matching tag, as Flux does */
  semver?: string;
  /** false where a digest pin must not be patched in (OCIRepository keeps ref separate) */
  patchable: boolean;
}

const CONTAINER_LISTS = ['containers', 'initContainers', 'ephemeralContainers'] as const;

/** JSON pointer and dotted path of the pod spec inside an object of this kind. */
export function podSpecLocation(kind: string): { pointer: string; field: string } | undefined {
  switch (kind) {
    case 'Pod': return { pointer: '/spec', field: 'spec' };
    case 'PodTemplate': return { pointer: '/template/spec', field: 'template.spec' };
    case 'CronJob': return { pointer: '/spec/jobTemplate/spec/template/spec', field: 'spec.jobTemplate.spec.template.spec' };
    case 'Deployment': case 'ReplicaSet': case 'StatefulSet': case 'DaemonSet': case 'Job': case 'ReplicationController':
      return { pointer: '/spec/template/spec', field: 'spec.template.spec' };
    default: return undefined;
  }
}

function at(object: unknown, pointer: string): unknown {
  let v: unknown = object;
  for (const part of pointer.split('/').slice(1)) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

export function imagesOf(object: KubeObject): ImageUse[] {
  const location = podSpecLocation(object.kind ?? '');
  const out: ImageUse[] = [];
  if (location) {
    const spec = at(object, location.pointer) as Record<string, unknown> | undefined;
    for (const list of CONTAINER_LISTS) {
      const containers = spec?.[list];
      if (!Array.isArray(containers)) continue;
      containers.forEach((c, i) => {
        const image = (c as { image?: unknown })?.image;
        if (typeof image === 'string') out.push({ image, pointer: `${location.pointer}/${list}/${i}/image`, field: `${location.field}.${list}[${i}]`, patchable: true });
      });
    }
  }
  if (object.kind === 'OCIRepository' && typeof (object.spec as { url?: unknown } | undefined)?.url === 'string') {
    const spec = object.spec as { url: string; ref?: { tag?: string; digest?: string; semver?: string } };
    const base = spec.url.replace(/^oci:\/\//, '');
    // Flux's precedence: digest, then semver, then tag, else latest
    const ref = spec.ref ?? {};
    const image = ref.digest ? `${base}@${ref.digest}` : ref.semver ? base : `${base}:${ref.tag ?? 'latest'}`;
    out.push({ image, pointer: '/spec/url', field: 'spec.url', semver: ref.digest ? undefined : ref.semver, patchable: false });
  }
  return out;
}
