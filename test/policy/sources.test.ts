// Tricky source URLs against the D2 allowlist: each with the decision a canonical check owes.
import t from 'tap';
import { canonicaliseSource, entryAllows, formatSource, nearestEntry, parseAllowEntry, parseHostAliases, splitAllowlist } from '../../src/policy/sources.js';

const D2 = ['https://github.com/controlplaneio-fluxcd/', 'oci://ghcr.io/controlplaneio-fluxcd/', 'oci://ghcr.io/stefanprodan/charts/', 'oci://registry-1.docker.io/bitnamicharts/', 'ssh://git@github.com/controlplaneio-fluxcd/'].map(parseAllowEntry);

function decide(url: string, isPrefix = false): 'allow' | 'deny' | 'invalid' {
  let c;
  try {
    c = canonicaliseSource(url, { isPrefix });
  } catch {
    return 'invalid';
  }
  return D2.some((e) => entryAllows(e.canonical, c)) ? 'allow' : 'deny';
}

const table: [string, string, 'allow' | 'deny' | 'invalid', boolean?][] = [
  ['D-01 an allowlisted OCI artifact', 'oci://ghcr.io/controlplaneio-fluxcd/d2-apps/frontend', 'allow'],
  ['F01 org prefix confusion', 'oci://ghcr.io/controlplaneio-fluxcd-evil/d2-apps/frontend', 'deny'],
  ['F02 dot segment in an OCI path is not a repository', 'oci://ghcr.io/controlplaneio-fluxcd/../attacker/manifests', 'invalid'],
  ['F03 upper-case host', 'oci://GHCR.IO/controlplaneio-fluxcd/d2-apps/frontend', 'allow'],
  ['F04 explicit default port', 'oci://ghcr.io:443/controlplaneio-fluxcd/d2-apps/frontend', 'allow'],
  ['another port is another origin', 'oci://ghcr.io:5000/controlplaneio-fluxcd/d2-apps/frontend', 'deny'],
  ['F05 docker.io is not registry-1.docker.io without an alias', 'oci://docker.io/bitnamicharts/redis', 'deny'],
  ['F09 a tag inside the URL', 'oci://ghcr.io/controlplaneio-fluxcd/d2-apps/frontend:latest', 'invalid'],
  ['upper case in an OCI path is not a repository', 'oci://ghcr.io/controlplaneio-fluxcd/D2-apps', 'invalid'],
  ['F10 the registry root', 'oci://ghcr.io/', 'deny'],
  ['F11 http instead of https', 'http://github.com/controlplaneio-fluxcd/d2-apps', 'deny'],
  ['F12 credentials in the URL', 'https://x-access-token:ghp_secret@github.com/controlplaneio-fluxcd/d2-apps', 'invalid'],
  ['F13 userinfo host confusion', 'https://github.com@evil.example/controlplaneio-fluxcd/d2-apps', 'invalid'],
  ['F14 host suffix confusion', 'https://github.com.evil.example/controlplaneio-fluxcd/d2-apps', 'deny'],
  ['F15 dot segments resolve out of the org', 'https://github.com/controlplaneio-fluxcd/../attacker/repo', 'deny'],
  ['F16 percent-encoded dot segments too', 'https://github.com/controlplaneio-fluxcd/%2e%2e/attacker/repo', 'deny'],
  ['mixed-case encoded dots', 'https://github.com/controlplaneio-fluxcd/%2E./attacker/repo', 'deny'],
  ['a dot segment that stays inside is fine', 'https://github.com/controlplaneio-fluxcd/x/../d2-apps', 'allow'],
  ['an encoded slash never splits a segment', 'https://github.com/controlplaneio-fluxcd%2F..%2Fattacker/repo', 'deny'],
  ['F17 the org itself is not below the entry', 'https://github.com/controlplaneio-fluxcd', 'deny'],
  ['F18 a trailing slash on the URL', 'https://github.com/controlplaneio-fluxcd/d2-apps/', 'allow'],
  ['F19 ssh with the git user', 'ssh://git@github.com/controlplaneio-fluxcd/d2-apps', 'allow'],
  ['scp-like git address is the same ssh identity', 'git@github.com:controlplaneio-fluxcd/d2-apps.git', 'allow'],
  ['ssh with another user is another identity', 'ssh://deploy@github.com/controlplaneio-fluxcd/d2-apps', 'deny'],
  ['ssh without a user is another identity', 'ssh://github.com/controlplaneio-fluxcd/d2-apps', 'deny'],
  ['ssh with an scp path inside (invalid port)', 'ssh://git@github.com:controlplaneio-fluxcd/d2-apps', 'invalid'],
  ['F20 upper-case scheme', 'HTTPS://github.com/controlplaneio-fluxcd/d2-apps', 'allow'],
  ['F21 .git suffix', 'https://github.com/controlplaneio-fluxcd/d2-apps.git', 'allow'],
  ['F22 an unlisted Helm repository', 'https://charts.bitnami.com/bitnami', 'deny'],
  ['F23 an OCI HelmRepository names everything below it', 'oci://registry-1.docker.io/bitnamicharts', 'allow', true],
  ['S-04 an OCI HelmRepository at the registry root', 'oci://ghcr.io/', 'deny', true],
  ['paths stay case-sensitive', 'https://github.com/ControlPlaneIO-FluxCD/d2-apps', 'deny'],
  ['a Unicode look-alike host is another host', 'https://gіthub.com/controlplaneio-fluxcd/d2-apps', 'deny'],
  ['a query string is refused', 'https://github.com/controlplaneio-fluxcd/d2-apps?ref=main', 'invalid'],
  ['git:// is refused unless listed', 'git://github.com/controlplaneio-fluxcd/d2-apps', 'deny'],
  ['a trailing dot on the host is the same host', 'https://github.com./controlplaneio-fluxcd/d2-apps', 'allow'],
  ['no scheme at all', 'github.com/controlplaneio-fluxcd/d2-apps', 'invalid'],
  ['an unrendered template below an allowed org', 'https://github.com/controlplaneio-fluxcd/{{repo}}', 'invalid'],
  ['a backslash (some clients read it as a slash)', 'https://github.com/controlplaneio-fluxcd\\..\\attacker/repo', 'invalid'],
];

t.test('tricky URLs against the D2 allowlist', async (t) => {
  for (const [name, url, expected, isPrefix] of table) t.equal(decide(url, isPrefix), expected, `${name}: ${url}`);
});

t.test('allow entries with and without a trailing slash both stop at segment boundaries', async (t) => {
  for (const raw of ['oci://ghcr.io/org/', 'oci://ghcr.io/org']) {
    const e = parseAllowEntry(raw).canonical;
    t.notOk(entryAllows(e, canonicaliseSource('oci://ghcr.io/org-evil/app')), `${raw} does not admit org-evil`);
    t.ok(entryAllows(e, canonicaliseSource('oci://ghcr.io/org/app')), `${raw} admits org/app`);
  }
  t.ok(entryAllows(parseAllowEntry('oci://ghcr.io/org').canonical, canonicaliseSource('oci://ghcr.io/org')), 'without a slash the entry admits itself');
  t.ok(entryAllows(parseAllowEntry('http://charts.internal/').canonical, canonicaliseSource('http://charts.internal/x')), 'an entry may name an insecure scheme');
});

t.test('canonical forms', async (t) => {
  t.equal(formatSource(canonicaliseSource('OCI://GHCR.io:443/org/app')), 'oci://ghcr.io/org/app');
  t.equal(formatSource(canonicaliseSource('HTTPS://GitHub.com:443//Org/x/../Repo')), 'https://github.com/Org/Repo');
  t.equal(formatSource(canonicaliseSource('https://bücher.example/x/%7Euser/./y')), 'https://xn--bcher-kva.example/x/~user/y');
  t.equal(formatSource(canonicaliseSource('git@GitHub.com:org/repo.git')), 'ssh://git@github.com/org/repo.git');
  t.equal(formatSource(canonicaliseSource('https://[::1]:8443/a')), 'https://[::1]:8443/a');
});

t.test('nearest entry, for messages that say what would pass', async (t) => {
  t.equal(nearestEntry(D2, canonicaliseSource('oci://ghcr.io/stefanprodan/manifests/podinfo'))?.raw, 'oci://ghcr.io/stefanprodan/charts/');
  t.equal(nearestEntry(D2, canonicaliseSource('https://github.com/stefanprodan/podinfo'))?.raw, 'https://github.com/controlplaneio-fluxcd/');
});

t.test("D2's allowlist format: spaces or newlines, empty entries dropped and counted", async (t) => {
  t.same(splitAllowlist('a/  b/\nc/ '), { entries: ['a/', 'b/', 'c/'], emptyEntries: 1 });
  t.same(splitAllowlist('a/\nb/'), { entries: ['a/', 'b/'], emptyEntries: 0 });
  t.same(splitAllowlist('   '), { entries: [], emptyEntries: 0 });
});

t.test('host aliases are explicit: docker.io is registry-1.docker.io only when a policy says so', async (t) => {
  const entry = parseAllowEntry('oci://registry-1.docker.io/bitnamicharts/').canonical;
  const url = canonicaliseSource('oci://docker.io/bitnamicharts/redis');
  t.notOk(entryAllows(entry, url), 'F05 without a table: denied');
  const aliases = parseHostAliases([['Docker.io', 'registry-1.docker.io', 'index.docker.io']]);
  t.ok(entryAllows(entry, url, aliases), 'F05 with the table: allowed');
  t.ok(entryAllows(parseAllowEntry('oci://docker.io/bitnamicharts/').canonical, canonicaliseSource('oci://INDEX.docker.io:443/bitnamicharts/redis'), aliases), 'either way round, names canonicalised');
  t.notOk(entryAllows(entry, canonicaliseSource('oci://docker.io/bitnamicharts-evil/redis'), aliases), 'still on segment boundaries');
  t.notOk(entryAllows(entry, canonicaliseSource('https://docker.io/bitnamicharts/redis'), aliases), 'the scheme still counts');
  t.notOk(entryAllows(entry, canonicaliseSource('oci://docker.io:5000/bitnamicharts/redis'), aliases), 'and the port');
  t.notOk(entryAllows(entry, canonicaliseSource('oci://ghcr.io/bitnamicharts/redis'), aliases), 'a host outside the group is another host');
  t.equal(nearestEntry(D2, canonicaliseSource('oci://docker.io/bitnami/redis'), aliases)?.raw, 'oci://registry-1.docker.io/bitnamicharts/', 'the nearest entry sees through aliases');
  t.throws(() => parseHostAliases([['a.example', 'b.example'], ['b.example', 'c.example']]), { message: /host b\.example is in two alias groups/ });
  t.throws(() => parseHostAliases([['a.example', 'bad host']]), { message: /"bad host" is not an acceptable/ });
  t.throws(() => parseHostAliases([['a.example', 'registry.example:5000']]), { message: /host alias "registry\.example:5000" has a port; give host names only/ });
  t.throws(() => parseHostAliases([['a.example', ' registry.example:5000 ']]), { message: /host alias " registry\.example:5000 " has a port/ }, 'padded');
  t.throws(() => parseHostAliases([['a.example', '[::1]:5000']]), { message: /host alias "\[::1\]:5000" has a port/ }, 'an IPv6 address with a port');
  t.same([...parseHostAliases([['a.example', '[::1]']]).keys()].length, 2, 'an IPv6 address without a port is a name like any other');
});
