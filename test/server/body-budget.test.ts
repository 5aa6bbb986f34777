import t from 'tap';
import { BodyBudget } from '../../src/server/body-budget.js';

const MiB = 1024 * 1024;

t.test('bodies that fit start at once; the rest wait in arrival order', async (t) => {
  const budget = new BodyBudget(16 * MiB);
  const a = await budget.acquire(8 * MiB, 1000);
  const b = await budget.acquire(8 * MiB, 1000);
  t.equal(budget.inUse, 16 * MiB);
  const started: string[] = [];
  const c = budget.acquire(8 * MiB, 1000).then((r) => (started.push('c'), r));
  const d = budget.acquire(1 * MiB, 1000).then((r) => (started.push('d'), r));
  await new Promise((r) => setTimeout(r, 20));
  t.same(started, [], 'd fits but does not overtake c');
  t.equal(budget.waiting, 2);
  a();
  a(); // a second release gives nothing back twice
  await new Promise((r) => setTimeout(r, 0));
  t.same(started, ['c'], 'c fits once a is back; d does not yet');
  t.equal(budget.inUse, 16 * MiB);
  b();
  await new Promise((r) => setTimeout(r, 0));
  t.same(started, ['c', 'd'], 'and d once b is back');
  (await c)();
  (await d)();
  t.equal(budget.inUse, 0);
});

t.test('a body larger than the whole budget runs alone', async (t) => {
  const budget = new BodyBudget(4 * MiB);
  const big = await budget.acquire(16 * MiB, 1000);
  let small = false;
  const next = budget.acquire(2 * MiB, 1000).then((r) => ((small = true), r));
  await new Promise((r) => setTimeout(r, 20));
  t.notOk(small, 'nothing joins it');
  big();
  (await next)();
  t.ok(small);
});

t.test('a waiter that cannot start in time is refused, and the ones behind it go on', async (t) => {
  const budget = new BodyBudget(16 * MiB);
  const held = await budget.acquire(12 * MiB, 1000);
  const late = budget.acquire(8 * MiB, 30);
  const behind = budget.acquire(4 * MiB, 1000);
  await t.rejects(late, { code: 'BODY_BUDGET_BUSY', message: /waited 30 ms for memory and could not start: 12582912 bytes of large reviews are in evaluation, 1 more waiting/ });
  const release = await behind; // fitted all along, held back only by the order
  t.equal(budget.inUse, 16 * MiB);
  release();
  held();
  t.equal(budget.waiting, 0);
});
