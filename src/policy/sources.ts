// Source URLs, canonicalised and matched on path-segment boundaries, never as string prefixes.
//
// A URL becomes scheme, user (ssh only), host, port and path segments: schemes and hosts are
// lower-cased and hosts IDNA-normalised (a look-alike Unicode host stays another host),
// default ports are dropped, percent-encoded unreserved characters are decoded (so %2e is a
// dot), dot segments are resolved, and an encoded slash never splits a segment. http(s) and
// oci URLs with userinfo are refused, as are queries and fragments. OCI repository paths must
// follow the distribution reference grammar (no tags, no '..').
import { domainToASCII } from 'node:url';

export interface CanonicalSource {
  scheme: string;
  user: string;
  host: string;
  port: string;
  segments: string[];
  /** the URL names a namespace of sources below it (an OCI HelmRepository), not one source */
  isPrefix: boolean;
}

export class SourceURLError extends Error {
  readonly code = 'SOURCE_URL_INVALID';
}

const DEFAULT_PORTS: Record<string, string> = { http: '80', https: '443', ssh: '22', git: '9418', oci: '443', s3: '443' };
const UNRESERVED = /[A-Za-z0-9\-._~]/;
// distribution reference grammar: path components of a repository name
const OCI_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
// scp-like git address: [user@]host:path, with no scheme
const SCP_LIKE = /^(?:([^@/:\s]+)@)?([^@/:\s\[\]]+):(?!\/\/)(.*)$/;

function fail(raw: string, why: string): never {
  throw new SourceURLError(`${JSON.stringify(raw)} is not an acceptable source URL: ${why}`);
}

/** Decodes %XX of unreserved characters only; %2F and friends stay encoded (upper-cased). */
function normaliseEscapes(segment: string, raw: string): string {
  return segment.replace(/%([0-9A-Fa-f]{2})|%/g, (m, hex: string | undefined) => {
    if (!hex) fail(raw, 'a stray % in the path');
    const ch = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`;
  });
}

function canonicalHost(host: string, raw: string): string {
  if (host.startsWith('[')) {
    if (!/^\[[0-9A-Fa-f:.]+\]$/.test(host)) fail(raw, `invalid IPv6 host ${host}`);
    return host.toLowerCase();
  }
  if (!host) fail(raw, 'no host');
  if (/%/.test(host)) fail(raw, 'percent-encoding in the host');
  const ascii = domainToASCII(host.toLowerCase());
  if (!ascii) fail(raw, `invalid host name ${JSON.stringify(host)}`);
  return ascii.replace(/\.$/, '');
}

function resolveDotSegments(segments: string[]): string[] {
  const out: string[] = [];
  for (const s of segments) {
    if (s === '.' || s === '') continue;
    if (s === '..') out.pop();
    else out.push(s);
  }
  return out;
}

export interface CanonicaliseOptions {
  /** an allow entry may name insecure schemes and ends in '/' to mean "below" */
  isPrefix?: boolean;
}

export function canonicaliseSource(raw: string, options: CanonicaliseOptions = {}): CanonicalSource {
  const text = raw.trim();
  if (!text) fail(raw, 'empty');
  if (/[\s\u0000-\u001f\u007f]/.test(text)) fail(raw, 'white space or control characters');
  // RFC 3986 never allows these unencoded; they mark templates ({{app}}) whose rendered value
  // could be anything, including '..', so such a URL cannot be vouched for
  if (/[{}<>"\\^`|]/.test(text)) fail(raw, 'characters a URL may not contain unencoded ({ } < > " \\ ^ ` |), e.g. an unrendered template');
  let scheme: string;
  let authority: string;
  let path: string;
  const schemeMatch = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)([?#].*)?$/.exec(text);
  if (schemeMatch) {
    scheme = schemeMatch[1]!.toLowerCase();
    authority = schemeMatch[2]!;
    path = schemeMatch[3]!;
    if (schemeMatch[4]) fail(raw, schemeMatch[4].startsWith('?') ? 'query strings are not allowed in source URLs' : 'fragments are not allowed in source URLs');
  } else {
    const scp = SCP_LIKE.exec(text);
    if (!scp) fail(raw, 'no scheme (expected e.g. https://, oci://, ssh:// or git@host:org/repo)');
    scheme = 'ssh';
    authority = scp[1] ? `${scp[1]}@${scp[2]}` : scp[2]!;
    path = `/${scp[3]}`;
  }
  let user = '';
  const at = authority.lastIndexOf('@');
  if (at >= 0) {
    const userinfo = authority.slice(0, at);
    authority = authority.slice(at + 1);
    if (scheme !== 'ssh') fail(raw, 'credentials or a user name in an http(s)/oci URL are refused: use a secretRef');
    if (userinfo.includes(':')) fail(raw, 'a password in an ssh URL is refused');
    user = userinfo;
  }
  const portMatch = /^(.*?)(?::([^:\]]*))?$/.exec(authority)!;
  let host = portMatch[1]!;
  let port = portMatch[2] ?? '';
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    host = authority.slice(0, close + 1);
    port = authority.slice(close + 1).replace(/^:/, '');
  }
  if (port && !/^\d{1,5}$/.test(port)) fail(raw, `invalid port ${JSON.stringify(port)}`);
  port = port.replace(/^0+(?=\d)/, '');
  if (DEFAULT_PORTS[scheme] === port) port = '';
  host = canonicalHost(host, raw);

  const rawSegments = path.split('/');
  if (scheme === 'oci') {
    // an OCI repository name has no escapes, no dot segments, no tag or digest
    for (const s of rawSegments.slice(1)) {
      if (s === '') continue;
      if (!OCI_COMPONENT.test(s)) fail(raw, `${JSON.stringify(s)} is not a valid OCI repository path component (lower-case, no tag or digest, no '..')`);
    }
  }
  // escapes are decoded first, so %2e%2e is a dot segment like '..'
  const segments = resolveDotSegments(rawSegments.map((s) => normaliseEscapes(s, raw)));
  return { scheme, user, host, port, segments, isPrefix: options.isPrefix ?? false };
}

export function formatSource(s: CanonicalSource): string {
  const auth = `${s.user ? `${s.user}@` : ''}${s.host}${s.port ? `:${s.port}` : ''}`;
  return `${s.scheme}://${auth}/${s.segments.join('/')}${s.isPrefix && s.segments.length ? '/' : ''}`;
}

export interface AllowEntry {
  raw: string;
  canonical: CanonicalSource;
}

/** Parses an allow entry: a trailing '/' means "strictly below this path". */
export function parseAllowEntry(raw: string): AllowEntry {
  const text = raw.trim();
  return { raw: text, canonical: canonicaliseSource(text, { isPrefix: text.endsWith('/') }) };
}

/** Host names that are one host (an explicit table: `docker.io` is not `registry-1.docker.io` unless a policy says so), each to the first of its group. */
export type HostAliases = ReadonlyMap<string, string>;
const NO_ALIASES: HostAliases = new Map();

/** The alias table for groups of host names; each name is canonicalised like a URL's host, and may be in one group only. */
export function parseHostAliases(groups: readonly (readonly string[])[]): HostAliases {
  const aliases = new Map<string, string>();
  for (const group of groups) {
    const hosts = group.map((h) => {
      const name = h.trim();
      // a port is compared as it is, never aliased: names only (a name, or a bracketed IPv6 address, then :port)
      if (/(?:^[^:]*|\]):\d+$/.test(name)) throw new SourceURLError(`host alias ${JSON.stringify(h)} has a port; give host names only (ports must match as they are)`);
      return canonicalHost(name, h);
    });
    for (const h of hosts) {
      if (aliases.has(h) && aliases.get(h) !== hosts[0]) throw new SourceURLError(`host ${h} is in two alias groups`);
      aliases.set(h, hosts[0]!);
    }
  }
  return aliases;
}

const sameHost = (a: string, b: string, aliases: HostAliases) => a === b || (aliases.get(a) ?? a) === (aliases.get(b) ?? b);

function sameOrigin(a: CanonicalSource, b: CanonicalSource, aliases: HostAliases): boolean {
  return a.scheme === b.scheme && sameHost(a.host, b.host, aliases) && a.port === b.port && a.user === b.user;
}

function startsWithSegments(path: string[], prefix: string[]): boolean {
  return prefix.length <= path.length && prefix.every((s, i) => path[i] === s);
}

/**
 * The set of sources the URL denotes must lie inside the set the entry allows. An entry
 * without a trailing '/' allows its path and everything below it; with one, only what is
 * strictly below. A prefix-like URL (OCI HelmRepository) denotes everything below its path.
 */
export function entryAllows(entry: CanonicalSource, url: CanonicalSource, aliases: HostAliases = NO_ALIASES): boolean {
  if (!sameOrigin(entry, url, aliases)) return false;
  if (!startsWithSegments(url.segments, entry.segments)) return false;
  if (!entry.isPrefix) return true;
  return url.segments.length > entry.segments.length || url.isPrefix;
}

/** The entry that shares the most with the URL, for messages that say what would pass. */
export function nearestEntry(entries: readonly AllowEntry[], url: CanonicalSource, aliases: HostAliases = NO_ALIASES): AllowEntry | undefined {
  let best: AllowEntry | undefined;
  let bestScore = -1;
  for (const e of entries) {
    const c = e.canonical;
    const host = sameHost(c.host, url.host, aliases);
    let score = (c.scheme === url.scheme ? 1000 : 0) + (host ? 100_000 : 0) + (c.user === url.user ? 10 : 0);
    let i = 0;
    if (host) while (i < c.segments.length && c.segments[i] === url.segments[i]) i++;
    score += i * 1_000_000;
    if (score > bestScore) (best = e), (bestScore = score);
  }
  return best;
}

/** Allowlist text as D2's ConfigMap holds it: entries separated by spaces or newlines. */
export function splitAllowlist(text: string): { entries: string[]; emptyEntries: number } {
  const parts = text.trim().split(/[ \t\r\n]/);
  const entries = parts.filter((p) => p !== '');
  // D2's split(' ') turns doubled spaces into empty entries that match everything; we drop them
  return { entries, emptyEntries: text.trim() ? parts.length - entries.length : 0 };
}
