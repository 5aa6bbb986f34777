// Signed checkpoints: a rewrite of the whole chain (every hash recomputed, which needs no key)
// is found, as are stripped checkpoints; a quiet replica and a short unsigned tail are not faults.
import { execFile } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { canonicalJson, HashChain, recordHash, verifyRecords, type DecisionRecord } from '../../src/audit/index.js';
import { CheckpointSigner, generateSigningKey, readSigningKey, readVerificationKeys, type CheckpointCadence } from '../../src/audit/checkpoint.js';
import { makeRecord } from '../helpers/audit.js';
import { policyDir, policyYaml, POD_RULE } from '../helpers/policies.js';
import { readFixture, startTestServer } from '../helpers/server.js';

const ed = generateSigningKey('ed25519');
const keysOf = (...pems: string[]) => readVerificationKeys(pems.map((pem, i) => ({ pem, where: `key ${i}` })));

/** records sealed by a signing chain; times advance by stepMs from a fixed start */
function signedChain(count: number, every: CheckpointCadence, options: { stepMs?: number; key?: string; state?: { seq: number; hash: string } } = {}): DecisionRecord[] {
  const chain = new HashChain(options.state, new CheckpointSigner(readSigningKey(options.key ?? ed.privateKey, 'test key'), every));
  const start = Date.parse('2026-12-02T10:00:00.000Z');
  return Array.from({ length: count }, (_, i) => {
    const record = makeRecord();
    record.time = new Date(start + i * (options.stepMs ?? 1)).toISOString();
    return chain.seal(record);
  });
}

const verify = (records: DecisionRecord[], keys = keysOf(ed.publicKey)) =>
  verifyRecords(records.map((r, i) => ({ position: i + 1, text: canonicalJson(r) })), { keys });

/** what someone with write access to the log but not the key can do: change a record and re-hash everything after it */
function rewrite(records: DecisionRecord[], from: number, edit: (r: DecisionRecord) => void): DecisionRecord[] {
  const out = records.map((r) => JSON.parse(canonicalJson(r)) as DecisionRecord);
  edit(out[from]!);
  for (let i = from; i < out.length; i++) {
    if (i > 0) out[i]!.prevHash = out[i - 1]!.hash;
    delete out[i]!.hash;
    out[i]!.hash = recordHash(out[i]!);
  }
  return out;
}

t.test('checkpoints come at the first record, then every N records or T ms, and verify', async (t) => {
  const byCount = signedChain(25, { records: 10, ms: 60_000 });
  t.same(byCount.flatMap((r) => (r.checkpoint ? [r.seq] : [])), [1, 11, 21]);
  const byTime = signedChain(10, { records: 1000, ms: 3 }, { stepMs: 1 });
  t.same(byTime.flatMap((r) => (r.checkpoint ? [r.seq] : [])), [1, 4, 7, 10]);
  const result = verify(byCount);
  t.same(result.problems, []);
  t.match(result.replicas['r-0'], { count: 25, checkpoints: 3, signedThrough: 20 });
  t.match(byCount[10]!.checkpoint, { keyId: ed.keyId, every: { records: 10, ms: 60_000 }, signature: /^[A-Za-z0-9+/]+=*$/ });
});

t.test('ECDSA P-256 and P-384 keys sign too; a key file may hold either half for verification', async (t) => {
  for (const algorithm of ['p256', 'p384'] as const) {
    const pair = generateSigningKey(algorithm);
    const records = signedChain(5, { records: 2, ms: 60_000 }, { key: pair.privateKey });
    t.same(verify(records, keysOf(pair.publicKey)).problems, [], algorithm);
    t.same(verify(records, keysOf(pair.privateKey)).problems, [], `${algorithm}, from the private key file`);
  }
});

t.test('a rewritten chain, hashes recomputed, fails at the first checkpoint after the edit', async (t) => {
  const records = signedChain(30, { records: 10, ms: 60_000 });
  const forged = rewrite(records, 4, (r) => { r.allowed = false; });
  // without keys the forgery is a perfectly good chain: that is what checkpoints are for
  t.same(verifyRecords(forged.map((r, i) => ({ position: i + 1, text: canonicalJson(r) }))).problems, []);
  t.match(verify(forged).problems, [{ kind: 'checkpoint', seq: 11, position: 11, detail: /does not hold over seq 10's hash/ }]);
});

t.test('stripping the checkpoints after an edit is found where the next one was due', async (t) => {
  const records = signedChain(30, { records: 10, ms: 60_000 });
  const forged = rewrite(records, 4, (r) => { r.allowed = false; });
  for (const r of forged.slice(4)) delete r.checkpoint;
  const rehashed = rewrite(forged, 4, () => {});
  t.match(verify(rehashed).problems, [{ kind: 'unsigned', seq: 11, detail: /every 10 records or 60000 ms after seq 1's/ }]);
  // collapsing the times does not help: the count is due all the same
  const allStripped = rewrite(records, 0, () => {});
  for (const r of allStripped) delete r.checkpoint;
  t.match(verify(rewrite(allStripped, 0, () => {})).problems, [{ kind: 'unsigned', detail: /none of the replica's 30 records carries a valid checkpoint/ }]);
});

t.test('a checkpoint moved to another record, another replica, or signed by a key not given, fails', async (t) => {
  const records = signedChain(12, { records: 5, ms: 60_000 });
  const moved = rewrite(records, 7, (r) => { r.checkpoint = records[5]!.checkpoint; });
  t.match(verify(moved).problems[0], { kind: 'checkpoint', seq: 8 });
  const other = generateSigningKey();
  t.match(verify(records, keysOf(other.publicKey)).problems[0], { kind: 'checkpoint', seq: 1, detail: /signed by key [0-9a-f]{16}…, which is none of the --key keys/ });
  // both keys given (a rotation): fine
  t.same(verify(records, keysOf(other.publicKey, ed.publicKey)).problems, []);
  const renamed = rewrite(records, 0, () => {});
  for (const r of renamed) r.replica = 'r-9';
  t.match(verify(rewrite(renamed, 0, () => {})).problems[0], { kind: 'checkpoint', replica: 'r-9', seq: 1 });
  const malformed = rewrite(records, 5, (r) => { r.checkpoint = { ...r.checkpoint!, every: { records: 0, ms: 5 } }; });
  t.match(verify(malformed).problems[0], { kind: 'checkpoint', seq: 6, detail: /malformed/ });
});

t.test('the unsigned tail after the newest checkpoint is reported, not failed; a restart signs at once', async (t) => {
  const records = signedChain(8, { records: 5, ms: 60_000 });
  const result = verify(records);
  t.same(result.problems, []);
  t.match(result.replicas['r-0'], { checkpoints: 2, signedThrough: 5, last: 8 });
  // a restarted replica continues the chain, and its first record is signed whatever the cadence
  const last = records.at(-1)!;
  const resumed = signedChain(3, { records: 5, ms: 60_000 }, { state: { seq: last.seq!, hash: last.hash! } });
  t.equal(resumed[0]!.seq, 9);
  t.ok(resumed[0]!.checkpoint);
  t.same(verify([...records, ...resumed]).problems, []);
});

t.test('key files: a public key cannot sign, an RSA key is refused, nonsense is not a key', async (t) => {
  t.throws(() => readSigningKey(ed.publicKey, 'k.pub'), /k\.pub: not a PEM private key \(this is a public key: it belongs to audit verify --key\)/);
  const { generateKeyPairSync } = await import('node:crypto');
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  t.throws(() => readSigningKey(rsa, 'rsa.key'), /rsa\.key: a rsa key cannot sign checkpoints; use Ed25519/);
  t.throws(() => keysOf('hello'), /key 0: not a PEM public key/);
});

t.test('trustgate audit keygen, serve-side signing, and audit verify --key from the command line', async (t) => {
  const dir = t.testdir({});
  const run = promisify(execFile);
  const cli = new URL('../../src/cli.ts', import.meta.url).pathname;
  const keygen = await run(process.execPath, ['--import', 'tsx', cli, 'audit', 'keygen', '--out', join(dir, 'keys')]);
  t.match(keygen.stdout, /signing key: .*audit-signing\.key.*\npublic key: .*audit-signing\.pub.*\nkey id: [0-9a-f]{64}/);
  t.equal((await stat(join(dir, 'keys', 'audit-signing.key'))).mode & 0o777, 0o600);
  const again = await run(process.execPath, ['--import', 'tsx', cli, 'audit', 'keygen', '--out', join(dir, 'keys')]).catch((e) => e as { code: number; stderr: string });
  t.equal((again as { code: number }).code, 2);
  t.match(again.stderr, /audit-signing\.key: exists; a signing key is never overwritten/);

  const rsa = await run(process.execPath, ['--import', 'tsx', cli, 'audit', 'keygen', '--out', join(dir, 'rsa'), '--algorithm', 'rsa']).catch((e) => e as { code: number; stderr: string });
  t.equal((rsa as { code: number }).code, 2);
  t.match(rsa.stderr, /--algorithm is ed25519, p256 or p384, got "rsa"/);
  const query = await run(process.execPath, ['--import', 'tsx', cli, 'audit', 'query', join(dir, 'nothing.jsonl'), '--key', join(dir, 'keys', 'audit-signing.pub')]).catch((e) => e as { code: number; stderr: string });
  t.equal((query as { code: number }).code, 2);
  t.match(query.stderr, /--key belongs to audit verify/);

  const key = await readFile(join(dir, 'keys', 'audit-signing.key'), 'utf8');
  const records = signedChain(12, { records: 5, ms: 60_000 }, { key });
  const file = join(dir, 'decisions.jsonl');
  await writeFile(file, `${records.map((r) => canonicalJson(r)).join('\n')}\n`);
  const pub = join(dir, 'keys', 'audit-signing.pub');
  const ok = await run(process.execPath, ['--import', 'tsx', cli, 'audit', 'verify', file, '--key', pub]);
  t.match(ok.stdout, /replica r-0: 12 records, seq 1…12, 3 checkpoints, signed through seq 10 \(2 after it\)\nverified: 12 records, every chain intact and signed/);
  const unkeyed = await run(process.execPath, ['--import', 'tsx', cli, 'audit', 'verify', file]);
  t.match(unkeyed.stdout, /note: 3 records carry signed checkpoints; give the replicas' public keys \(--key\) to check them/);

  const forged = rewrite(records, 2, (r) => { r.request.namespace = 'elsewhere'; });
  await writeFile(file, `${forged.map((r) => canonicalJson(r)).join('\n')}\n`);
  const bad = await run(process.execPath, ['--import', 'tsx', cli, 'audit', 'verify', file, '--key', pub]).catch((e) => e as { code: number; stdout: string });
  t.equal((bad as { code: number }).code, 1);
  t.match(bad.stdout, /FAILED checkpoint at .*decisions\.jsonl:6 \(replica r-0, seq 6\): the checkpoint's signature does not hold/);
  const missing = await run(process.execPath, ['--import', 'tsx', cli, 'audit', 'verify', file, '--key', join(dir, 'nope.pub')]).catch((e) => e as { code: number; stderr: string });
  t.equal((missing as { code: number }).code, 2);
  t.match(missing.stderr, /--key .*nope\.pub: no such file/);
});

t.test('the server signs its chain with --audit-signing-key; the log verifies with the public key; metrics show the newest checkpoint', async (t) => {
  const dir = t.testdir({ 'audit-signing.key': ed.privateKey, 'audit-signing.pub': ed.publicKey });
  const file = join(dir, 'decisions.jsonl');
  const policies = await policyDir({ 'p.yaml': policyYaml('any-pod', `${POD_RULE}\nvalidations:\n  - expression: "true"`) });
  const review = await readFixture('admissionreviews/pod-create-with-init-container.review.json');
  const server = await startTestServer({ policies: [policies], audit: [`file:${file}`], auditSigningKey: join(dir, 'audit-signing.key'), auditCheckpointRecords: 3, auditCheckpointMs: 60_000 });
  t.teardown(() => server.close());
  for (let i = 0; i < 7; i++) t.equal((await server.post('/validate', { ...review, request: { ...review.request, uid: `u${i}` } })).status, 200);
  t.ok(await server.audit.drained());
  const records = (await readFile(file, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as DecisionRecord);
  t.same(records.map((r) => Boolean(r.checkpoint)), [true, false, false, true, false, false, true]);
  t.same(verify(records).problems, []);
  t.match((await server.get('/metrics')).text, /^trustgate_audit_checkpoint_seq 7$/m);
});

t.test('serve refuses a signing key it cannot use, before it listens', async (t) => {
  const dir = t.testdir({ 'k.pub': ed.publicKey });
  await t.rejects(startTestServer({ auditSigningKey: join(dir, 'k.pub') }), /--audit-signing-key .*k\.pub: not a PEM private key \(this is a public key/);
  await t.rejects(startTestServer({ auditSigningKey: join(dir, 'missing.key') }), /--audit-signing-key .*missing\.key: no such file/);
});
