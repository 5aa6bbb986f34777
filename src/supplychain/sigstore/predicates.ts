// In-toto predicate types and the facts policies ask about most, read from verified statements
// only: who built it from what (SLSA provenance), what is in it (SPDX, CycloneDX), which known
// vulnerabilities it has (cosign vuln: Trivy or Grype results) and which are accepted (OpenVEX).

/** Short names for the usual predicate types; a policy may also give any URI. */
export const PREDICATE_ALIASES: Record<string, string[]> = {
  slsaprovenance02: ['https://slsa.dev/provenance/v0.2'],
  slsaprovenance1: ['https://slsa.dev/provenance/v1'],
  slsaprovenance: ['https://slsa.dev/provenance/v0.2', 'https://slsa.dev/provenance/v1'],
  spdx: ['https://spdx.dev/Document'],
  cyclonedx: ['https://cyclonedx.org/bom'],
  sbom: ['https://spdx.dev/Document', 'https://cyclonedx.org/bom'],
  vuln: ['https://cosign.sigstore.dev/attestation/vuln/v1'],
  openvex: ['https://openvex.dev/ns'],
};

// versioned forms (https://spdx.dev/Document/v2.3, https://cyclonedx.org/bom/v1.6, https://openvex.dev/ns/v0.2.0) count as the family
const FAMILIES = ['https://spdx.dev/Document', 'https://cyclonedx.org/bom', 'https://openvex.dev/ns'];

export class PredicateTypeError extends Error {}

/** A matcher for a policy's predicateType (an alias, a URI, or a list of them). */
export function compilePredicateTypes(spec: string | string[]): { matches(type: string): boolean; describe: string } {
  const uris = new Set<string>();
  for (const t of Array.isArray(spec) ? spec : [spec]) {
    const alias = Object.hasOwn(PREDICATE_ALIASES, t.toLowerCase()) ? PREDICATE_ALIASES[t.toLowerCase()] : undefined;
    if (alias) alias.forEach((u) => uris.add(u));
    else if (/^[a-z][a-z0-9+.-]*:\S+$/i.test(t)) uris.add(t);
    else throw new PredicateTypeError(`predicateType ${JSON.stringify(t)} is neither a URI nor one of ${Object.keys(PREDICATE_ALIASES).join(', ')}`);
  }
  const families = [...uris].filter((u) => FAMILIES.includes(u));
  return {
    matches: (type) => uris.has(type) || families.some((f) => type.startsWith(`${f}/`)),
    describe: [...uris].join(' or '),
  };
}

export interface Component { name: string; version: string; purl: string; licenses: string[] }
export interface Vulnerability { id: string; severity: string; package: string }

/** What the helpers extract; every field is present (empty when the predicate has no such thing). */
export interface PredicateFacts {
  builderId: string;
  buildType: string;
  sourceRepository: string;
  sourceRef: string;
  sourceDigest: string;
  components: Component[];
  licenses: string[];
  vulnerabilities: Vulnerability[];
  severityCounts: Record<'critical' | 'high' | 'medium' | 'low' | 'unknown', number>;
  notAffected: string[];
}

type J = Record<string, unknown>;
const obj = (v: unknown): J => (v && typeof v === 'object' && !Array.isArray(v) ? (v as J) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string => (typeof v === 'string' ? v : '');

/** git+https://github.com/org/repo@refs/heads/main -> repository and ref */
function splitGitUri(uri: string): { repository: string; ref: string } {
  const clean = uri.replace(/^git\+/, '');
  const at = clean.lastIndexOf('@');
  return at > clean.indexOf('://') + 3 ? { repository: clean.slice(0, at), ref: clean.slice(at + 1) } : { repository: clean, ref: '' };
}

function provenance(predicateType: string, p: J, f: PredicateFacts): void {
  if (predicateType === 'https://slsa.dev/provenance/v0.2') {
    f.builderId = str(obj(p.builder).id);
    f.buildType = str(p.buildType);
    const source = obj(obj(p.invocation).configSource);
    const { repository, ref } = splitGitUri(str(source.uri));
    f.sourceRepository = repository;
    f.sourceRef = ref;
    f.sourceDigest = str(obj(source.digest).sha1) || str(obj(source.digest).gitCommit);
    return;
  }
  const run = obj(p.runDetails);
  const def = obj(p.buildDefinition);
  f.builderId = str(obj(run.builder).id);
  f.buildType = str(def.buildType);
  const workflow = obj(obj(def.externalParameters).workflow);
  const dep = obj(arr(def.resolvedDependencies)[0]);
  const fromDep = splitGitUri(str(dep.uri));
  f.sourceRepository = str(workflow.repository) || fromDep.repository;
  f.sourceRef = str(workflow.ref) || fromDep.ref;
  f.sourceDigest = str(obj(dep.digest).gitCommit) || str(obj(dep.digest).sha1);
}

const NO_LICENSE = new Set(['', 'NOASSERTION', 'NONE']);

function spdx2(p: J): Component[] {
  return arr(p.packages).map((raw) => {
    const pkg = obj(raw);
    const purl = arr(pkg.externalRefs).map(obj).find((r) => r.referenceType === 'purl');
    const licenses = [str(pkg.licenseConcluded), str(pkg.licenseDeclared)].filter((l) => !NO_LICENSE.has(l));
    return { name: str(pkg.name), version: str(pkg.versionInfo), purl: str(purl?.referenceLocator), licenses: [...new Set(licenses)] };
  });
}

/** SPDX 3.0 JSON-LD: software_Package elements, licences through hasConcluded/DeclaredLicense relationships. */
function spdx3(p: J): Component[] {
  const graph = arr(p['@graph']).map(obj);
  const expressions = new Map<string, string>();
  for (const e of graph) if (str(e.type).includes('LicenseExpression')) expressions.set(str(e.spdxId), str(e.simplelicensing_licenseExpression));
  const licensesOf = new Map<string, string[]>();
  for (const r of graph) {
    if (str(r.type) !== 'Relationship' || !/^has(Concluded|Declared)License$/.test(str(r.relationshipType))) continue;
    const license = arr(r.to).map((to) => expressions.get(str(to)) ?? '').filter((l) => !NO_LICENSE.has(l));
    licensesOf.set(str(r.from), [...(licensesOf.get(str(r.from)) ?? []), ...license]);
  }
  return graph.filter((e) => str(e.type) === 'software_Package').map((e) => ({
    name: str(e.name), version: str(e.software_packageVersion), purl: str(e.software_packageUrl), licenses: [...new Set(licensesOf.get(str(e.spdxId)) ?? [])],
  }));
}

function cyclonedx(p: J, limit: number): Component[] {
  const out: Component[] = [];
  const visit = (list: unknown[]) => {
    for (const raw of list) {
      if (out.length >= limit) return;
      const c = obj(raw);
      const licenses = arr(c.licenses).map(obj).map((l) => str(l.expression) || str(obj(l.license).id) || str(obj(l.license).name)).filter(Boolean);
      out.push({ name: str(c.name), version: str(c.version), purl: str(c.purl), licenses: [...new Set(licenses)] });
      visit(arr(c.components));
    }
  };
  visit(arr(p.components));
  return out;
}

function vulnerabilities(p: J): Vulnerability[] {
  const result = obj(obj(p.scanner).result);
  const out: Vulnerability[] = [];
  // Trivy JSON
  for (const r of arr(result.Results).map(obj)) {
    for (const v of arr(r.Vulnerabilities).map(obj)) out.push({ id: str(v.VulnerabilityID), severity: str(v.Severity).toLowerCase() || 'unknown', package: str(v.PkgName) });
  }
  // Grype JSON
  for (const m of arr(result.matches).map(obj)) {
    const v = obj(m.vulnerability);
    out.push({ id: str(v.id), severity: str(v.severity).toLowerCase() || 'unknown', package: str(obj(m.artifact).name) });
  }
  return out;
}

function openvexNotAffected(p: J): string[] {
  const ids = new Set<string>();
  for (const s of arr(p.statements).map(obj)) {
    if (s.status !== 'not_affected' && s.status !== 'fixed') continue;
    const v = s.vulnerability;
    const id = typeof v === 'string' ? v : str(obj(v).name) || str(obj(v)['@id']);
    if (id) ids.add(id);
    for (const alias of arr(obj(v).aliases)) if (typeof alias === 'string') ids.add(alias);
  }
  return [...ids];
}

export function predicateFacts(predicateType: string, predicate: unknown, maxComponents = 100_000): PredicateFacts {
  const f: PredicateFacts = {
    builderId: '', buildType: '', sourceRepository: '', sourceRef: '', sourceDigest: '',
    components: [], licenses: [], vulnerabilities: [], severityCounts: { critical: 0, high: 0, medium: 0, low: 0, unknown: 0 }, notAffected: [],
  };
  const p = obj(predicate);
  if (predicateType.startsWith('https://slsa.dev/provenance/')) provenance(predicateType, p, f);
  else if (predicateType.startsWith('https://spdx.dev/Document')) f.components = p['@graph'] ? spdx3(p) : spdx2(p);
  else if (predicateType.startsWith('https://cyclonedx.org/bom')) f.components = cyclonedx(p, maxComponents);
  else if (predicateType === 'https://cosign.sigstore.dev/attestation/vuln/v1') f.vulnerabilities = vulnerabilities(p);
  else if (predicateType.startsWith('https://openvex.dev/ns')) f.notAffected = openvexNotAffected(p);
  f.components = f.components.slice(0, maxComponents);
  f.licenses = [...new Set(f.components.flatMap((c) => c.licenses))].sort();
  for (const v of f.vulnerabilities) {
    const key = (['critical', 'high', 'medium', 'low'].includes(v.severity) ? v.severity : 'unknown') as keyof PredicateFacts['severityCounts'];
    f.severityCounts[key]++;
  }
  return f;
}
