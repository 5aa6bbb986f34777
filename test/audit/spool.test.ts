// Group commit with fsync: a group's fsync starts without waiting for the one before it, and
// groups are answered in the order they were written, never one ahead of an earlier group.
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Spool } from '../../src/audit/spool.js';
import { holdFsyncs } from '../helpers/fsyncs.js';

const turn = () => new Promise((resolve) => setImmediate(resolve));
const turns = async (n = 5) => { for (let i = 0; i < n; i++) await turn(); };

/** Tracks an append: 'waiting' until it settles, then 'ok' or the rejection's message. */
function track(p: Promise<void>): { state: string } {
  const s = { state: 'waiting' };
  p.then(() => { s.state = 'ok'; }, (err: Error) => { s.state = err.message; });
  return s;
}

async function openSpool() {
  const dir = await mkdtemp(join(tmpdir(), 'tg-spool-'));
  const spool = await Spool.open(dir, { sync: 'fsync', syncsInFlight: 2 });
  return { dir, spool };
}

t.test('a second group is fsync\'d while the first still waits, and answered only after it', async (t) => {
  const { dir, spool } = await openSpool();
  const held = await holdFsyncs(t);
  const first = track(spool.append('{"n":1}'));
  await turns();
  t.equal(held.length, 1, 'the first group\'s fsync started');
  const second = track(spool.append('{"n":2}'));
  await turns();
  t.equal(held.length, 2, 'the second group\'s fsync started without waiting for the first');
  t.equal(await readFile(join(dir, 'segment-000000001.jsonl'), 'utf8'), '{"n":1}\n{"n":2}\n', 'both written in order');

  const third = track(spool.append('{"n":3}'));
  await turns();
  t.equal(held.length, 2, 'no third fsync while two run');

  await held[1]!.succeed();
  await turns(20);
  t.same([first.state, second.state], ['waiting', 'waiting'], 'the second group is not answered ahead of the first');
  await held[0]!.succeed();
  await turns(20);
  t.same([first.state, second.state], ['ok', 'ok'], 'both answered once the first is on disk');
  t.equal(held.length, 3, 'the third group\'s fsync started once one finished');
  await held[2]!.succeed();
  await turns(20);
  t.equal(third.state, 'ok');
  await spool.close();
});

t.test('a failed fsync fails every group still waiting, even one whose own fsync succeeded', async (t) => {
  const { spool } = await openSpool();
  const held = await holdFsyncs(t);
  const first = track(spool.append('{"n":1}'));
  await turns();
  const second = track(spool.append('{"n":2}'));
  await turns();
  t.equal(held.length, 2);
  // the kernel reports a write-back error to one fsync of the file only: the one that succeeded
  // may have covered the very pages that were lost
  await held[1]!.succeed();
  await turns(20);
  held[0]!.fail(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }));
  await turns(20);
  t.same([first.state, second.state], ['EIO: i/o error, fsync', 'EIO: i/o error, fsync']);

  const after = track(spool.append('{"n":3}'));
  await turns();
  await held[2]!.succeed();
  await turns(20);
  t.equal(after.state, 'ok', 'a later group, fsync\'d after the failure, is answered');
  await spool.close();
});

t.test('close waits for the fsyncs in flight', async (t) => {
  const { spool } = await openSpool();
  const held = await holdFsyncs(t);
  const first = track(spool.append('{"n":1}'));
  await turns();
  let closed = false;
  const closing = spool.close().then(() => { closed = true; });
  await turns(20);
  t.notOk(closed, 'not closed while an fsync runs');
  void held[0]!.succeed();
  await closing;
  t.equal(first.state, 'ok');
});

t.test('segments rotate under overlapping fsyncs without losing or reordering a line', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tg-spool-'));
  const spool = await Spool.open(dir, { sync: 'fsync', syncsInFlight: 2, segmentBytes: 1024 });
  const lines: string[] = [];
  const appends: Promise<void>[] = [];
  for (let burst = 0; burst < 40; burst++) {
    for (let i = 0; i < 10; i++) {
      const line = JSON.stringify({ n: burst * 10 + i, pad: 'x'.repeat(40) });
      lines.push(line);
      appends.push(spool.append(line));
    }
    await turn();
  }
  await Promise.all(appends);
  await spool.close();
  const segments = (await readdir(dir)).filter((f) => f.startsWith('segment-')).sort();
  t.ok(segments.length > 1, `rotated (${segments.length} segments)`);
  const text = (await Promise.all(segments.map((f) => readFile(join(dir, f), 'utf8')))).join('');
  t.same(text.split('\n').filter(Boolean), lines, 'every line, once, in order');
});
