// The `sources` rule of a policy: which source URLs an object may name.
import type { AdmissionRequest } from '../admission/types.js';
import type { ParamsLookup } from './evaluate.js';
import { CONFIG_MAP } from './types.js';
import { crossNamespaceReferences, sourceReferences, type CustomSourceFields } from './source-fields.js';
import { canonicaliseSource, entryAllows, formatSource, nearestEntry, parseAllowEntry, splitAllowlist, SourceURLError, type AllowEntry, type HostAliases } from './sources.js';

export interface SourcesRuleSpec {
  allow?: string[];
  allowFile?: string;
  allowConfigMap?: { namespace: string; name: string; key?: string };
  crossNamespaceRefs?: 'deny' | 'allow';
  fields?: CustomSourceFields[];
  hostAliases?: string[][];
}

export interface CompiledSourcesRule {
  entries: AllowEntry[];
  configMap?: { namespace: string; name: string; key: string };
  crossNamespaceRefs: 'deny' | 'allow';
  fields: CustomSourceFields[];
  hostAliases: HostAliases;
}

export interface SourcesOutcome {
  failures: string[];
  notes: string[];
  /** the allowlist could not be read: decided by failurePolicy */
  missing?: string;
}

interface ParsedAllowlist { entries: AllowEntry[]; notes: string[] }

// ConfigMap text changes rarely; parse each distinct text once
const parsedLists = new Map<string, ParsedAllowlist>();
function parseAllowlistText(text: string, where: string): ParsedAllowlist {
  const cached = parsedLists.get(text);
  if (cached) return cached;
  const { entries: raw, emptyEntries } = splitAllowlist(text);
  const notes: string[] = [];
  if (emptyEntries) notes.push(`${where} has ${emptyEntries} empty entr${emptyEntries === 1 ? 'y' : 'ies'} (doubled or stray separators); ignored`);
  const entries: AllowEntry[] = [];
  for (const r of raw) {
    try {
      entries.push(parseAllowEntry(r));
    } catch (err) {
      notes.push(`${where}: entry ignored: ${(err as Error).message}`);
    }
  }
  const parsed = { entries, notes };
  if (parsedLists.size > 64) parsedLists.clear();
  parsedLists.set(text, parsed);
  return parsed;
}

function allowlistOf(rule: CompiledSourcesRule, params: ParamsLookup | undefined): ParsedAllowlist | string {
  if (!rule.configMap) return { entries: rule.entries, notes: [] };
  const { namespace, name, key } = rule.configMap;
  const cm = params?.object(CONFIG_MAP, namespace, name);
  if (!cm) return `allowlist ConfigMap ${namespace}/${name} not found`;
  const text = (cm.data as Record<string, unknown> | undefined)?.[key];
  if (typeof text !== 'string') return `allowlist ConfigMap ${namespace}/${name} has no key ${JSON.stringify(key)}`;
  const parsed = parseAllowlistText(text, `allowlist ConfigMap ${namespace}/${name}`);
  return rule.entries.length ? { entries: [...rule.entries, ...parsed.entries], notes: parsed.notes } : parsed;
}

export function evaluateSourcesRule(rule: CompiledSourcesRule, request: AdmissionRequest, params: ParamsLookup | undefined): SourcesOutcome {
  const object = request.object;
  if (!object) return { failures: [], notes: [] };
  const group = request.kind.group;
  const refs = sourceReferences(object, group, rule.fields);
  const cross = rule.crossNamespaceRefs === 'deny' ? crossNamespaceReferences(object, group, request.namespace ?? '') : [];
  const failures = cross.map((c) => `${c.field} points into namespace ${c.namespace}: cross-namespace source references are refused (sources.crossNamespaceRefs: allow permits them)`);
  if (!refs.length) return { failures, notes: [] };
  const list = allowlistOf(rule, params);
  if (typeof list === 'string') return { failures, notes: [], missing: list };
  for (const ref of refs) {
    let canonical;
    try {
      canonical = canonicaliseSource(ref.url, { isPrefix: ref.isPrefix });
    } catch (err) {
      failures.push(`${ref.field}: ${err instanceof SourceURLError ? err.message : String(err)}`);
      continue;
    }
    if (list.entries.some((e) => entryAllows(e.canonical, canonical, rule.hostAliases))) continue;
    const near = nearestEntry(list.entries, canonical, rule.hostAliases);
    const shown = formatSource(canonical);
    failures.push(`${ref.field} ${ref.url}${shown !== ref.url ? ` (canonical ${shown})` : ''} is not on the source allowlist; ${near ? `nearest allowed entry: ${near.raw}` : 'the allowlist is empty'}`);
  }
  return { failures, notes: list.notes };
}
