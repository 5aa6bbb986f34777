// Sigstore's own conformance suite (sigstore-conformance test/assets/bundle-verify) run through
// `trustgate verify-bundle` exactly as the suite drives a client: flags in, exit code out.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { main } from '../../../src/cli.js';

const DIR = join(import.meta.dirname, '../../fixtures/sigstore/conformance');
const DEFAULT_IDENTITY = 'https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main';
const DEFAULT_ISSUER = 'https://token.actions.githubusercontent.com';
// every case, including trust-root-tlog-missing-validity-start_fail, which @sigstore/verify alone
// accepts (a tlog key without validFor.start read as valid since the epoch): trust-root.ts refuses it
const cases = readdirSync(DIR, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();

async function run(args: string[]): Promise<{ code: number; err: string }> {
  const write = process.stderr.write.bind(process.stderr);
  const out = process.stdout.write.bind(process.stdout);
  let err = '';
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  process.stdout.write = (() => true) as typeof process.stdout.write;
  try {
    return { code: await main(args), err };
  } finally {
    process.stderr.write = write;
    process.stdout.write = out;
  }
}

let passed = 0;
t.test('every conformance case gives its expected outcome', async (t) => {
  for (const name of cases) {
    const dir = join(DIR, name);
    const file = (f: string) => join(dir, f);
    const args = ['verify-bundle', '--bundle', file('bundle.sigstore.json')];
    if (existsSync(file('key.pub'))) args.push('--key', file('key.pub'));
    else {
      const read = (f: string, d: string) => (existsSync(file(f)) ? readFileSync(file(f), 'utf8').trim() : d);
      args.push('--certificate-identity', read('identity', DEFAULT_IDENTITY), '--certificate-oidc-issuer', read('issuer', DEFAULT_ISSUER));
    }
    if (existsSync(file('trusted_root.json'))) args.push('--trusted-root', file('trusted_root.json'));
    args.push(existsSync(file('artifact')) ? file('artifact') : join(DIR, 'a.txt'));
    const expectFail = name.endsWith('_fail');
    const { code, err } = await run(args);
    const ok = expectFail ? code === 1 : code === 0;
    if (ok) passed++;
    t.ok(ok, `${name}: expected ${expectFail ? 'rejection' : 'verification'}${ok ? '' : `, got exit ${code} ${err.trim()}`}`);
  }
  t.comment(`sigstore-conformance bundle-verify: ${passed}/${cases.length} cases as expected`);
});

t.test('a usage error exits 2 and names what is missing', async (t) => {
  const { code, err } = await run(['verify-bundle', '--bundle', join(DIR, 'happy-path-v0.3/bundle.sigstore.json'), join(DIR, 'a.txt')]);
  t.equal(code, 2);
  t.match(err, /--certificate-identity/);
});
