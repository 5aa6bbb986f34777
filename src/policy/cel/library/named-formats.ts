// Kubernetes' format library (k8s.io/apiserver/pkg/cel/library/format.go): format.dns1123Label()
// and the other named formats, format.named(name), and <format>.validate(s), which is none for
// a valid string and otherwise the reasons, worded as Kubernetes words them. Checked by hand,
// character by character: linear on any input, where the equivalent regexes would backtrack.
import { Optional, type Environment } from '@marcbachmann/cel-js';

export class NamedFormat {
  constructor(readonly name: string, readonly check: (s: string) => string[]) {}
  toString(): string { return this.name; }
}
class FormatNamespace {}

const lower = (c: number) => c >= 97 && c <= 122;
const upper = (c: number) => c >= 65 && c <= 90;
const digit = (c: number) => c >= 48 && c <= 57;
const DASH = 45, DOT = 46, UNDERSCORE = 95;

/** every character passes `inner`, the first `first`, the last `last`; not empty */
function shaped(s: string, first: (c: number) => boolean, inner: (c: number) => boolean, last: (c: number) => boolean): boolean {
  if (s.length === 0 || !first(s.charCodeAt(0)) || !last(s.charCodeAt(s.length - 1))) return false;
  for (let i = 1; i < s.length - 1; i++) if (!inner(s.charCodeAt(i))) return false;
  return true;
}
const lowerAlnum = (c: number) => lower(c) || digit(c);
const alnum = (c: number) => lower(c) || upper(c) || digit(c);
const isDNS1123Label = (s: string) => shaped(s, lowerAlnum, (c) => lowerAlnum(c) || c === DASH, lowerAlnum);
const isDNS1035Label = (s: string) => shaped(s, lower, (c) => lowerAlnum(c) || c === DASH, lowerAlnum);
const isQualifiedNamePart = (s: string) => shaped(s, alnum, (c) => alnum(c) || c === DASH || c === UNDERSCORE || c === DOT, alnum);
const isDNS1123Subdomain = (s: string) => s.split('.').every(isDNS1123Label);

// apimachinery's wording (validation.RegexError, MaxLenError, EmptyError)
const regexError = (msg: string, fmt: string, ...examples: string[]) =>
  `${msg} (e.g. ${examples.map((e) => `'${e}', `).join(' or ')}regex used for validation is '${fmt}')`;
const maxLenError = (n: number) => `must be no more than ${n} characters`;
const DNS1123_LABEL_FMT = '[a-z0-9]([-a-z0-9]*[a-z0-9])?';
const DNS1123_SUBDOMAIN_FMT = `${DNS1123_LABEL_FMT}(\\.${DNS1123_LABEL_FMT})*`;
const DNS1035_LABEL_FMT = '[a-z]([-a-z0-9]*[a-z0-9])?';
const QUALIFIED_NAME_FMT = '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]';
const QUALIFIED_NAME_MSG = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/** apimachinery's shape of a check: too long, and (separately) not of the right form */
const checked = (max: number, ok: (s: string) => boolean, reason: (s: string) => string) => (s: string): string[] => {
  const errs = s.length > max ? [maxLenError(max)] : [];
  if (!ok(s)) errs.push(reason(s));
  return errs;
};

const dns1123Label = checked(63, isDNS1123Label, (s) => (isDNS1123Subdomain(s) ? 'must not contain dots'
  : regexError("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character", DNS1123_LABEL_FMT, 'my-name', '123-abc')));

const dns1123Subdomain = checked(253, isDNS1123Subdomain, () =>
  regexError("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character", DNS1123_SUBDOMAIN_FMT, 'example.com'));

const dns1035Label = checked(63, isDNS1035Label, () =>
  regexError("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character", DNS1035_LABEL_FMT, 'my-name', 'abc-123'));

function qualifiedName(s: string): string[] {
  const errs: string[] = [];
  const parts = s.split('/');
  if (parts.length > 2) {
    return [`a qualified name ${regexError(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, 'MyName', 'my.name', '123-abc')} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')`];
  }
  const name = parts.at(-1)!;
  if (parts.length === 2) {
    if (parts[0] === '') errs.push('prefix part must be non-empty');
    else errs.push(...dns1123Subdomain(parts[0]!).map((m) => `prefix part ${m}`));
  }
  if (name === '') errs.push('name part must be non-empty');
  else if (name.length > 63) errs.push(`name part ${maxLenError(63)}`);
  if (!isQualifiedNamePart(name)) errs.push(`name part ${regexError(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, 'MyName', 'my.name', '123-abc')}`);
  return errs;
}

const labelValue = checked(63, (s) => s === '' || isQualifiedNamePart(s), () =>
  regexError("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character", `(${QUALIFIED_NAME_FMT})?`, 'MyValue', 'my_value', '12345'));

/** a generated name's prefix may end in '-': Kubernetes masks it (its last two characters become 'a') */
const asPrefix = (check: (s: string) => string[]) => (s: string) => check(s.length > 1 && s.endsWith('-') ? `${s.slice(0, -2)}a` : s);

/** Go's url.ParseRequestURI: an absolute URI with a scheme, or an absolute path */
function uri(s: string): string[] {
  if (/[\u0000-\u001f\u007f]/.test(s)) return [`parse ${JSON.stringify(s)}: net/url: invalid control character in URL`];
  if (s.startsWith('/') || (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(s) && URL.canParse(s))) return [];
  return [`parse ${JSON.stringify(s)}: invalid URI for request`];
}

const UUID = /^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32})$/i;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATETIME = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[Zz]|[+-](\d{2}):?(\d{2}))?$/;

const leap = (y: number) => y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
function validDate(y: string, m: string, d: string): boolean {
  const month = Number(m), day = Number(d);
  const days = [31, leap(Number(y)) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
  return days !== undefined && day >= 1 && day <= days;
}

function date(s: string): string[] {
  const m = DATE.exec(s);
  return m && validDate(m[1]!, m[2]!, m[3]!) ? [] : ['invalid date'];
}

function datetime(s: string): string[] {
  const m = DATETIME.exec(s);
  const ok = m && validDate(m[1]!, m[2]!, m[3]!) && Number(m[4]) < 24 && Number(m[5]) < 60 && Number(m[6]) < 60
    && (m[7] === undefined || (Number(m[7]) < 24 && Number(m[8]) < 60));
  return ok ? [] : ['invalid datetime'];
}

const FORMATS = new Map<string, NamedFormat>(([
  ['dns1123Label', dns1123Label],
  ['dns1123Subdomain', dns1123Subdomain],
  ['dns1035Label', dns1035Label],
  ['qualifiedName', qualifiedName],
  ['dns1123LabelPrefix', asPrefix(dns1123Label)],
  ['dns1123SubdomainPrefix', asPrefix(dns1123Subdomain)],
  ['dns1035LabelPrefix', asPrefix(dns1035Label)],
  ['labelValue', labelValue],
  ['uri', uri],
  ['uuid', (s: string) => (UUID.test(s) ? [] : ['does not match the UUID format'])],
  ['byte', (s: string) => (BASE64.test(s) ? [] : ['invalid base64'])],
  ['date', date],
  ['datetime', datetime],
] as const).map(([name, check]) => [name, new NamedFormat(name, check)]));

export function registerNamedFormats(env: Environment): void {
  env
    .registerType('kubernetes.NamedFormat', NamedFormat)
    .registerType('FormatNamespace', FormatNamespace)
    .registerConstant('format', 'FormatNamespace', new FormatNamespace())
    .registerFunction('FormatNamespace.named(string): optional<kubernetes.NamedFormat>', (_: unknown, name: string) => {
      const f = FORMATS.get(name);
      return f ? Optional.of(f) : Optional.none();
    })
    .registerFunction('kubernetes.NamedFormat.validate(string): optional<list<string>>', (f: NamedFormat, s: string) => {
      const errs = f.check(s);
      return errs.length ? Optional.of(errs) : Optional.none();
    })
    .registerOperator('kubernetes.NamedFormat == kubernetes.NamedFormat', (a: NamedFormat, b: NamedFormat) => a === b);
  for (const [name, f] of FORMATS) env.registerFunction(`FormatNamespace.${name}(): kubernetes.NamedFormat`, () => f);
}

/** The checks of apimachinery's validation, for names trustgate sends to the API server (params selectors). */
export { dns1123Label, dns1123Subdomain, labelValue, qualifiedName };
