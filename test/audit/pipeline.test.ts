// The spool and the sinks: durable before acknowledging the caller, delivered once the sink
// is back, replayed after a restart, and never silently dropped when full.
import { readFile, readdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { AuditPipeline, AuditUnavailableError, createSink, verifyRecords } from '../../src/audit/index.js';
import { jsonArrayOfLines } from '../../src/audit/sinks/json-lines.js';
import { makeRecord, Receiver } from '../helpers/audit.js';
import { watchFsyncs } from '../helpers/fsyncs.js';

const logger = pino({ level: 'silent' });
const tmpSpool = () => mkdtempSync(join(tmpdir(), 'tg-spool-'));
const spoolText = async (dir: string) => (await Promise.all((await readdir(dir)).filter((f) => f.startsWith('segment-')).sort().map((f) => readFile(join(dir, f), 'utf8')))).join('');

t.test('a record is in the spool when record() resolves', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tg-spool-'));
  const audit = await AuditPipeline.start({ spoolDir: dir, sinks: [], whenFull: 'deny', logger });
  t.teardown(() => audit.close());
  const r = makeRecord();
  await audit.record(r);
  t.match(await spoolText(dir), new RegExp(`"decisionId":"${r.decisionId}"`));
});

t.test('--audit-sync: fsync waits for the disk, write for the kernel with the fsync soon after', async (t) => {
  const fsyncs = await watchFsyncs(t);
  const strict = await AuditPipeline.start({ spoolDir: await mkdtemp(join(tmpdir(), 'tg-spool-')), sinks: [], whenFull: 'deny', logger });
  const before = fsyncs.count;
  await strict.record(makeRecord());
  t.ok(fsyncs.count > before, 'fsync: the record was fsync\'d before record() resolved');
  await strict.close();

  const dir = await mkdtemp(join(tmpdir(), 'tg-spool-'));
  const relaxed = await AuditPipeline.start({ spoolDir: dir, sinks: [], whenFull: 'deny', logger, spoolSync: 'write' });
  const r = makeRecord();
  const start = fsyncs.count;
  await relaxed.record(r);
  t.equal(fsyncs.count, start, 'write: record() resolved before any fsync');
  t.match(await spoolText(dir), new RegExp(`"decisionId":"${r.decisionId}"`), 'and the record is already in the spool file');
  await new Promise((resolve) => setTimeout(resolve, 150));
  t.ok(fsyncs.count > start, 'the background fsync followed within the interval');
  await relaxed.close();
});

t.test('--audit-sync write: a failed background fsync refuses the next record instead of passing silently', async (t) => {
  let failNext = false;
  await watchFsyncs(t, () => (failNext ? ((failNext = false), Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' })) : undefined));
  const audit = await AuditPipeline.start({ spoolDir: await mkdtemp(join(tmpdir(), 'tg-spool-')), sinks: [], whenFull: 'deny', logger, spoolSync: 'write' });
  t.teardown(() => audit.close());
  failNext = true;
  await audit.record(makeRecord());
  await new Promise((resolve) => setTimeout(resolve, 150));
  await t.rejects(audit.record(makeRecord()), { code: 'AUDIT_UNAVAILABLE', message: /background fsync failed.*EIO/ });
  await audit.record(makeRecord());
  t.pass('the spool writes again once the failure was reported');
});

t.test('an HTTP sink that is down gets every record, once, when it comes back', async (t) => {
  const receiver = await new Receiver().start();
  t.teardown(() => receiver.stop());
  receiver.up = false;
  const dir = await mkdtemp(join(tmpdir(), 'tg-spool-'));
  const audit = await AuditPipeline.start({ spoolDir: dir, sinks: [createSink(receiver.url, { headers: { authorization: 'Bearer test-token' } })], whenFull: 'deny', logger });
  t.teardown(() => audit.close());
  const ids: string[] = [];
  for (let i = 0; i < 50; i++) {
    const r = makeRecord();
    ids.push(r.decisionId);
    await audit.record(r);
  }
  await new Promise((r) => setTimeout(r, 300));
  t.equal(receiver.received.length, 0, 'nothing acknowledged while down');
  receiver.up = true;
  t.ok(await audit.drained(15_000), 'drained after the sink came back');
  t.same(receiver.received.map((r) => r.decisionId), ids, 'all, in order, no duplicates');
  t.equal(receiver.headers.authorization, 'Bearer test-token');
  t.same(verifyRecords(receiver.received.map((record, i) => ({ position: i + 1, record }))).problems, []);
});

t.test('a restart replays what no sink acknowledged, and the chain continues', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tg-spool-'));
  const out = join(dir, 'out', 'decisions.jsonl');
  const receiver = await new Receiver().start();
  t.teardown(() => receiver.stop());
  receiver.up = false;
  const first = await AuditPipeline.start({ spoolDir: join(dir, 'spool'), sinks: [createSink(receiver.url)], whenFull: 'deny', logger });
  for (let i = 0; i < 10; i++) await first.record(makeRecord());
  await first.close(); // as if the process died with 10 records unacknowledged

  receiver.up = true;
  const second = await AuditPipeline.start({ spoolDir: join(dir, 'spool'), sinks: [createSink(receiver.url), createSink(`file:${out}`)], whenFull: 'deny', logger });
  t.teardown(() => second.close());
  t.equal(second.chainHead.seq, 10, 'the chain resumes at its head');
  for (let i = 0; i < 5; i++) await second.record(makeRecord());
  t.ok(await second.drained(15_000));
  t.same(receiver.received.map((r) => r.seq), Array.from({ length: 15 }, (_, i) => i + 1));
  const fileLines = (await readFile(out, 'utf8')).trim().split('\n');
  t.equal(fileLines.length, 15, 'a sink added later starts from the oldest spooled record');
  t.same(verifyRecords(fileLines.map((text, i) => ({ position: i + 1, text }))).problems, []);
});

t.test('a full spool denies by default, or admits and counts the loss with allow', async (t) => {
  const lost: number[] = [];
  const metrics = { written() {}, lost: () => lost.push(1), acked() {}, sinkError() {}, spoolBytes() {}, spoolLimit() {}, checkpoint() {}, backlog() {} };
  const deny = await AuditPipeline.start({ spoolDir: await mkdtemp(join(tmpdir(), 'tg-spool-')), sinks: [], whenFull: 'deny', maxSpoolBytes: 1000, logger, metrics });
  t.teardown(() => deny.close());
  await deny.record(makeRecord());
  await deny.record(makeRecord());
  await t.rejects(deny.record(makeRecord()), { code: 'AUDIT_UNAVAILABLE', message: /audit spool is full/ });
  t.ok(AuditUnavailableError);
  const allow = await AuditPipeline.start({ spoolDir: await mkdtemp(join(tmpdir(), 'tg-spool-')), sinks: [], whenFull: 'allow', maxSpoolBytes: 1000, logger, metrics });
  t.teardown(() => allow.close());
  for (let i = 0; i < 4; i++) await allow.record(makeRecord());
  t.equal(lost.length, 3, 'one loss counted under deny, two under allow');
});

t.test('a full disk refuses each decision with a clear error, and the next one too', async (t) => {
  // /dev/full answers every write with ENOSPC: the active segment is made to be it
  const dir = await mkdtemp(join(tmpdir(), 'tg-spool-'));
  await symlink('/dev/full', join(dir, 'segment-000000001.jsonl'));
  const audit = await AuditPipeline.start({ spoolDir: dir, sinks: [], whenFull: 'deny', logger });
  t.teardown(() => audit.close());
  await t.rejects(audit.record(makeRecord()), { code: 'AUDIT_UNAVAILABLE', message: /could not be written to the audit spool: ENOSPC/ });
  await t.rejects(audit.record(makeRecord()), { code: 'AUDIT_UNAVAILABLE', message: /ENOSPC/ }, 'and the next one too, each answered');
});

t.test('acknowledged segments are removed from the spool', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tg-spool-'));
  const out = join(dir, 'decisions.jsonl');
  const audit = await AuditPipeline.start({ spoolDir: join(dir, 'spool'), sinks: [createSink(`file:${out}`)], whenFull: 'deny', logger });
  t.teardown(() => audit.close());
  for (let i = 0; i < 3; i++) await audit.record(makeRecord());
  t.ok(await audit.drained());
  t.equal((await readFile(out, 'utf8')).trim().split('\n').length, 3);
});

t.test('a line torn by a crash mid-write is cut off at start, and the chain resumes before it', async (t) => {
  const { appendFile } = await import('node:fs/promises');
  const dir = await mkdtemp(join(tmpdir(), 'tg-spool-'));
  const first = await AuditPipeline.start({ spoolDir: dir, sinks: [], whenFull: 'deny', logger });
  for (let i = 0; i < 3; i++) await first.record(makeRecord());
  await first.close();
  const segment = (await readdir(dir)).find((f) => f.startsWith('segment-'))!;
  await appendFile(join(dir, segment), '{"allowed":true,"decisionId":"torn');
  const second = await AuditPipeline.start({ spoolDir: dir, sinks: [], whenFull: 'deny', logger });
  t.teardown(() => second.close());
  t.equal(second.chainHead.seq, 3);
  await second.record(makeRecord());
  const lines = (await spoolText(dir)).trim().split('\n');
  t.equal(lines.length, 4);
  t.same(verifyRecords(lines.map((text, i) => ({ position: i + 1, text }))).problems, []);
});

t.test('the HTTP sink can speak Elastic Common Schema', async (t) => {
  const receiver = await new Receiver().start();
  t.teardown(() => receiver.stop());
  const audit = await AuditPipeline.start({ spoolDir: await mkdtemp(join(tmpdir(), 'tg-spool-')), sinks: [createSink(receiver.url, { format: 'ecs' })], whenFull: 'deny', logger });
  t.teardown(() => audit.close());
  const r = makeRecord({ allowed: false, namespace: 'payments', user: 'bob' });
  await audit.record(r);
  t.ok(await audit.drained());
  const doc = receiver.received[0] as unknown as Record<string, any>;
  t.match(doc, {
    '@timestamp': r.time, event: { outcome: 'failure', id: r.decisionId, action: 'admission-validate' },
    user: { name: 'bob' }, orchestrator: { type: 'kubernetes', namespace: 'payments' }, trustgate: { decisionId: r.decisionId, seq: 1 },
  });
});

t.test('an idle pipeline does not accumulate waiters', async (t) => {
  const audit = await AuditPipeline.start({ spoolDir: await mkdtemp(join(tmpdir(), 'tg-spool-')), sinks: [createSink('stdout')], whenFull: 'deny', logger });
  t.teardown(() => audit.close());
  await new Promise((r) => setTimeout(r, 3500)); // three idle polls of the one sink
  t.ok(audit.waiting <= 1, `waiting: ${audit.waiting}`);
});

t.test('the spool reads whole lines from a cursor, as many as asked, and the cursor lands after them', async (t) => {
  const { Spool } = await import('../../src/audit/spool.js');
  const dir = await mkdtemp(join(tmpdir(), 'tg-spool-'));
  const spool = await Spool.open(dir, { sync: 'write' });
  t.teardown(() => spool.close());
  // multi-byte characters: the cursor counts bytes, the lines are text
  const lines = ['{"a":"é"}', '{"b":"日本"}', '{"c":"\u{1f600}"}', '{"d":1}', '{"e":"ü"}'];
  for (const line of lines) await spool.append(line);
  let cursor = { segment: 0, offset: 0 };
  const seen: string[] = [];
  for (let i = 0; i < 5 && seen.length < lines.length; i++) {
    const batch = await spool.read(cursor, 2);
    t.ok(batch.count <= 2);
    t.equal(batch.lines().length, batch.count);
    t.equal(batch.bytes.toString(), batch.lines().map((l) => `${l}\n`).join(''), 'the bytes are the lines, each ending in a newline');
    if (batch.count) t.equal(batch.firstLine(), batch.lines()[0]);
    seen.push(...batch.lines());
    cursor = batch.next;
  }
  t.same(seen, lines, 'every line once, in order, in batches of two');
  t.same((await spool.read(cursor, 2)).lines(), [], 'nothing after the last line');
  // a read too short for the next line returns nothing and leaves the cursor where it was
  const start = { segment: 0, offset: 0 };
  const short = await spool.read(start, 10, Buffer.byteLength(lines[0]!));
  t.same(short.lines(), [], 'no half line');
  t.equal(short.count, 0);
  t.same(short.next.offset, 0);
  const one = await spool.read(start, 10, Buffer.byteLength(lines[0]!) + 1 + 3);
  t.same(one.lines(), [lines[0]], 'only the whole lines within the bytes read');
  t.equal(one.next.offset, Buffer.byteLength(lines[0]!) + 1);
});

t.test('records appended together are written as one batch, multi-byte text intact', async (t) => {
  const { Spool } = await import('../../src/audit/spool.js');
  const dir = await mkdtemp(join(tmpdir(), 'tg-spool-'));
  const spool = await Spool.open(dir, { sync: 'write' });
  t.teardown(() => spool.close());
  // appended in one turn: one write of all of them, each line encoded at its own offset
  const lines = Array.from({ length: 20 }, (_, i) => JSON.stringify({ i, text: ['é', '日本', '\u{1f600}', 'plain'][i % 4]!.repeat(i + 1) }));
  await Promise.all(lines.map((line) => spool.append(line)));
  const batch = await spool.read({ segment: 0, offset: 0 }, 100);
  t.same(batch.lines(), lines);
  t.equal(batch.bytes.length, lines.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0));
});

t.test("a delivered batch's bytes are not kept through the feeder's pause, and close() cuts the pause short", async (t) => {
  // Kept, a batch outlived two scavenges, was promoted, and held its buffer until a full
  // mark-compact: 0.8 MB/s of buffers at 500 req/s and a 6-10 ms pause every 5 s.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  let given: WeakRef<Buffer> | undefined;
  let delivered!: () => void;
  const sent = new Promise<void>((resolve) => (delivered = resolve));
  const sink = {
    id: 'weak', name: 'weak',
    async send() {},
    async sendJsonLines(bytes: Buffer) {
      given = new WeakRef(bytes);
      setImmediate(delivered);
    },
  };
  const audit = await AuditPipeline.start({ spoolDir: tmpSpool(), sinks: [sink], whenFull: 'deny', logger, batchDelayMs: 60_000 });
  await audit.record(makeRecord());
  await sent;
  await new Promise((r) => setTimeout(r, 50)); // the feeder is in its pause now
  gc();
  t.equal(given?.deref(), undefined, 'collected while the feeder waits');
  const closing = Date.now();
  await audit.close();
  t.ok(Date.now() - closing < 5000, 'close() does not wait out a 60 s pause');
});

t.test('the HTTP sink gets the spool\'s lines as one JSON array without decoding or copying them', async (t) => {
  const lines = [{ a: 1, s: 'zwölf \u2028 "q" \\n' }, { b: [true, null] }, { c: '😀' }].map((o) => JSON.stringify(o));
  const bytes = Buffer.from(`${lines.join('\n')}\n`);
  const { parts, count } = jsonArrayOfLines(bytes);
  const array = Buffer.concat(parts).toString();
  t.equal(count, 3);
  t.equal(array, `[${lines.join(',')}]`);
  t.same(JSON.parse(array), lines.map((l) => JSON.parse(l)));
  t.equal(parts[1]!.buffer, bytes.buffer, 'the lines are the spool\'s own bytes, changed in place');
  t.equal(Buffer.concat(jsonArrayOfLines(Buffer.from('{"one":1}\n')).parts).toString(), '[{"one":1}]');
  t.same(jsonArrayOfLines(Buffer.alloc(0)), { parts: [Buffer.from('[]')], count: 0 });
});

t.test('a receiver that refuses a batch for its size (HTTP 413) gets the records fewer at a time, every one once', async (t) => {
  const receiver = await new Receiver().start();
  t.teardown(() => receiver.stop());
  // records that do not compress away: each message is random text
  const noise = () => Array.from({ length: 4 }, () => Math.random().toString(36).slice(2)).join('');
  const big = () => {
    const r = makeRecord();
    r.policies = [{ name: 'p', revision: 'r', mode: 'enforce', result: 'fail', messages: Array.from({ length: 40 }, noise) }];
    return r;
  };
  receiver.maxBody = 12_000;
  const audit = await AuditPipeline.start({ spoolDir: tmpSpool(), sinks: [createSink(receiver.url)], whenFull: 'deny', logger, batchSize: 64 });
  t.teardown(() => audit.close());
  const ids: string[] = [];
  for (let i = 0; i < 40; i++) {
    const r = big();
    ids.push(r.decisionId);
    await audit.record(r);
  }
  t.ok(await audit.drained(20_000), 'all acknowledged');
  t.same(receiver.received.map((r) => r.decisionId).sort(), ids.sort(), 'every record, once');
  t.ok(receiver.batches.some((b) => b.status === 413), 'the receiver did refuse batches');
  t.ok(receiver.batches.filter((b) => b.status === 200).every((b) => b.count < 40), 'and took them in smaller ones');
  t.same(verifyRecords(receiver.received.map((record, i) => ({ position: i + 1, record }))).problems, [], 'in chain order');
});
