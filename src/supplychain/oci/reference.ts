// Image references normalised the way the container runtime resolves them (the distribution
// reference grammar): docker.io and library/ defaults, registry ports, tag and digest.

export interface ImageReference {
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
  /** registry/repository[:tag][@digest], with the implicit :latest made explicit when neither is given */
  normalized: string;
}

export class ReferenceError extends Error {
  readonly code = 'INVALID_IMAGE_REFERENCE';
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^(sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})$/;
const DOMAIN = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::\d{1,5})?$|^\[[0-9a-fA-F:]+\](?::\d{1,5})?$/;

export function parseImageReference(raw: string): ImageReference {
  const fail = (why: string): never => {
    throw new ReferenceError(`${JSON.stringify(raw)} is not a valid image reference: ${why}`);
  };
  if (!raw || raw !== raw.trim() || raw.length > 4096) fail('empty, padded or too long');
  let rest = raw;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) fail(`bad digest ${JSON.stringify(digest)}`);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) fail(`bad tag ${JSON.stringify(tag)}`);
  }
  const slash = rest.indexOf('/');
  let registry = 'docker.io';
  let path = rest;
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    // like the runtime: a first component with '.' or ':' or exactly localhost is a registry
    if (first.includes('.') || first.includes(':') || first === 'localhost') {
      if (!DOMAIN.test(first)) fail(`bad registry ${JSON.stringify(first)}`);
      registry = first.toLowerCase() === 'index.docker.io' ? 'docker.io' : first.toLowerCase();
      path = rest.slice(slash + 1);
    }
  }
  if (registry === 'docker.io' && !path.includes('/')) path = `library/${path}`;
  const components = path.split('/');
  if (!components.every((c) => COMPONENT.test(c))) fail('repository path components must be lower-case alphanumerics separated by . _ __ or -');
  const repository = components.join('/');
  if (!tag && !digest) tag = 'latest';
  const normalized = `${registry}/${repository}${tag ? `:${tag}` : ''}${digest ? `@${digest}` : ''}`;
  return { registry, repository, tag, digest, normalized };
}
