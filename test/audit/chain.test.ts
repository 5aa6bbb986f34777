// The hash chain, and `trustgate audit verify` finding an edit, a deletion or a reorder.
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { canonicalJson, HashChain, verifyRecords, GENESIS_HASH } from '../../src/audit/index.js';
import { makeRecord } from '../helpers/audit.js';

const sealedLines = (count: number) => {
  const chain = new HashChain();
  return Array.from({ length: count }, () => canonicalJson(chain.seal(makeRecord())));
};

t.test('a sealed chain verifies; seq counts from 1 and links to the genesis hash', async (t) => {
  const lines = sealedLines(5);
  const first = JSON.parse(lines[0]!);
  t.equal(first.seq, 1);
  t.equal(first.prevHash, GENESIS_HASH);
  t.equal(JSON.parse(lines[1]!).prevHash, first.hash);
  const result = verifyRecords(lines.map((text, i) => ({ position: i + 1, text })));
  t.same(result.problems, []);
  t.same(result.replicas, { 'r-0': { first: 1, last: 5, count: 5, checkpoints: 0 } });
});

t.test('an edit, a deletion, a reorder and a duplicate are each found at their position', async (t) => {
  const check = (lines: string[]) => verifyRecords(lines.map((text, i) => ({ position: i + 1, text }))).problems[0];
  const edited = sealedLines(4);
  edited[2] = edited[2]!.replace('"allowed":true', '"allowed":false');
  t.match(check(edited), { kind: 'edited', position: 3, seq: 3 });
  const deleted = sealedLines(4);
  deleted.splice(1, 1);
  t.match(check(deleted), { kind: 'gap', position: 2, seq: 3, detail: /seq 2…2 missing/ });
  const reordered = sealedLines(4);
  [reordered[1], reordered[2]] = [reordered[2]!, reordered[1]!];
  t.match(check(reordered), { kind: 'gap', position: 2 });
  const duplicated = sealedLines(3);
  duplicated.push(duplicated[2]!);
  t.match(check(duplicated), { kind: 'duplicate', position: 4 });
  const relinked = sealedLines(3);
  const r = JSON.parse(relinked[1]!);
  r.prevHash = 'f'.repeat(64);
  relinked[1] = canonicalJson(r);
  t.match(verifyRecords(relinked.map((text, i) => ({ position: i + 1, text }))).problems.map((p) => p.kind), ['edited']);
});

t.test('trustgate audit verify: exit 0 on an intact log, exit 1 naming file:line of the first problem', async (t) => {
  const dir = t.testdir({});
  const file = join(dir, 'decisions.jsonl');
  const lines = sealedLines(6);
  await writeFile(file, `${lines.join('\n')}\n`);
  const run = promisify(execFile);
  const cli = new URL('../../src/cli.ts', import.meta.url).pathname;
  const ok = await run(process.execPath, ['--import', 'tsx', cli, 'audit', 'verify', file]);
  t.match(ok.stdout, /replica r-0: 6 records, seq 1…6\nverified: 6 records, every chain intact/);
  lines.splice(3, 1);
  await writeFile(file, `${lines.join('\n')}\n`);
  const bad = await run(process.execPath, ['--import', 'tsx', cli, 'audit', 'verify', file]).catch((e) => e as { code: number; stdout: string });
  t.equal((bad as { code: number }).code, 1);
  t.match(bad.stdout, /FAILED gap at .*decisions\.jsonl:4 \(replica r-0, seq 5\): seq 4…4 missing/);
});

t.test('the spool line is the canonical JSON of the sealed record', async (t) => {
  const a = new HashChain();
  const b = new HashChain();
  for (let i = 0; i < 3; i++) {
    const record = makeRecord();
    const twin = structuredClone(record);
    const line = a.sealToLine(record);
    t.equal(line, canonicalJson(record), 'same text as serialising the sealed record');
    t.equal(b.seal(twin).hash, record.hash, 'same hash as seal()');
  }
});

t.test('a NUL or an unpaired surrogate in a record is replaced before the hash: every sink can store it, and it verifies', async (t) => {
  const chain = new HashChain();
  const record = makeRecord({ user: 'mallory\u0000admin' });
  record.policies = [{ name: 'p', revision: 'r', mode: 'enforce', result: 'fail', messages: ['image \ud800x is bad', 'pair \ud83d\ude00 kept', 'a \\u0000 written out stays'], annotations: { 'k\u0000': 'v' } }];
  const line = chain.sealToLine(record);
  t.notMatch(line, /(?<!\\)\\u0000|\\ud8/, 'nothing left that PostgreSQL\'s jsonb refuses (an escaped backslash before u0000 is text)');
  const sealed = JSON.parse(line);
  t.equal(sealed.request.userInfo.username, 'mallory\ufffdadmin');
  t.same(sealed.policies[0].messages, ['image \ufffdx is bad', 'pair \ud83d\ude00 kept', 'a \\u0000 written out stays']);
  t.same(sealed.policies[0].annotations, { 'k\ufffd': 'v' });
  t.same(verifyRecords([{ position: 1, record: sealed }]).problems, [], 'the hash is over the replaced text');
  const plain = makeRecord();
  const twin = structuredClone(plain);
  t.equal(new HashChain().sealToLine(plain), canonicalJson(new HashChain().seal(twin)), 'other records are untouched');
});
