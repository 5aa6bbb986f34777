import type { ClientRequest, IncomingMessage } from 'node:http';
import { Agent, request } from 'node:https';
import t from 'tap';
import { BodyBudget } from '../../src/server/body-budget.js';
import { policyDir, policyYaml, POD_RULE } from '../helpers/policies.js';
import { readFixture, startTestServer } from '../helpers/server.js';

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

t.test('over HTTPS: a caller that gives up while waiting for the budget leaves none of it behind', async (t) => {
  // a 2 MiB limit makes the budget 2 MiB: one 1.5 MiB review at a time
  const server = await startTestServer({ policies: [await policyDir({ 'p.yaml': policyYaml('any', `${POD_RULE}\nvalidations:\n  - expression: "true"`) })], bodyLimit: 2 * MiB });
  t.teardown(() => server.close());
  const review = await readFixture('admissionreviews/pod-create-with-init-container.review.json');
  review.request.object.metadata.annotations = { pad: 'x'.repeat(1.5 * MiB) };
  const body = Buffer.from(JSON.stringify(review));
  const open = (): ClientRequest => {
    const req = request(`${server.url}/validate`, { method: 'POST', ca: server.ca, agent: false, headers: { 'content-type': 'application/json', 'content-length': body.length } });
    req.on('error', () => {});
    return req;
  };
  // A takes the budget and sends half its body; B waits behind it, then gives up
  const a = open();
  const answerA = new Promise<number>((resolve) => a.on('response', (res: IncomingMessage) => (res.resume(), resolve(res.statusCode ?? 0))));
  a.write(body.subarray(0, body.length >> 1));
  await new Promise((r) => setTimeout(r, 200));
  const b = open();
  b.write(body.subarray(0, 1024));
  await new Promise((r) => setTimeout(r, 200));
  b.destroy();
  await new Promise((r) => setTimeout(r, 100));
  a.end(body.subarray(body.length >> 1));
  t.equal(await answerA, 200, 'A answered');
  // C must not wait for a share B never gave back
  const started = Date.now();
  const c = await server.post('/validate', body.toString(), { 'content-type': 'application/json' });
  t.equal(c.status, 200);
  t.ok(Date.now() - started < 2000, `C started at once (${Date.now() - started} ms)`);
});

t.test('over HTTPS: a sender that stalls mid-body loses its share a second past the deadline', async (t) => {
  const server = await startTestServer({ policies: [await policyDir({ 'p.yaml': policyYaml('any', `${POD_RULE}\nvalidations:\n  - expression: "true"`) })], bodyLimit: 2 * MiB, deadlineMs: 1000 });
  t.teardown(() => server.close());
  const review = await readFixture('admissionreviews/pod-create-with-init-container.review.json');
  review.request.object.metadata.annotations = { pad: 'x'.repeat(1.5 * MiB) };
  const body = Buffer.from(JSON.stringify(review));
  const stalled = request(`${server.url}/validate`, { method: 'POST', ca: server.ca, agent: false, headers: { 'content-type': 'application/json', 'content-length': body.length } });
  const cut = new Promise<string>((resolve) => {
    stalled.on('error', (err) => resolve(err.message));
    stalled.on('response', (res: IncomingMessage) => resolve(`answered ${res.statusCode}`));
  });
  stalled.write(body.subarray(0, body.length >> 1)); // and never the rest
  await new Promise((r) => setTimeout(r, 200));
  const busy = await server.post('/validate', body.toString(), { 'content-type': 'application/json' });
  t.equal(busy.status, 503, 'while it holds the budget, another large review is refused after half the deadline');
  t.match(busy.json(), { error: 'Busy', message: /waited 500 ms for memory/ });
  t.equal(busy.headers['retry-after'], '1');
  const waited = Promise.race([cut, new Promise<string>((r) => setTimeout(() => r('still open 5 s later'), 5000))]);
  t.match(await waited, /socket hang up|ECONNRESET/, 'the stalled sender is cut off');
  stalled.destroy();
  const after = await server.post('/validate', body.toString(), { 'content-type': 'application/json' });
  t.equal(after.status, 200, 'and the next large review is evaluated');
});

t.test('over HTTPS: a body of unknown length (chunked) counts as the whole limit; ordinary reviews never wait', async (t) => {
  const server = await startTestServer({ policies: [await policyDir({ 'p.yaml': policyYaml('any', `${POD_RULE}\nvalidations:\n  - expression: "true"`) })], bodyLimit: 2 * MiB, deadlineMs: 1000 });
  t.teardown(() => server.close());
  const review = await readFixture('admissionreviews/pod-create-with-init-container.review.json');
  const small = JSON.stringify(review);
  review.request.object.metadata.annotations = { pad: 'x'.repeat(1.5 * MiB) };
  const large = JSON.stringify(review);
  // no content-length: Node sends it chunked, and its size is known only at the end
  const chunked = request(`${server.url}/validate`, { method: 'POST', ca: server.ca, agent: false, headers: { 'content-type': 'application/json' } });
  const answer = new Promise<number>((resolve, reject) => {
    chunked.on('response', (res: IncomingMessage) => (res.resume(), resolve(res.statusCode ?? 0)));
    chunked.on('error', reject);
  });
  chunked.write(small.slice(0, 100));
  await new Promise((r) => setTimeout(r, 200));
  const busy = await server.post('/validate', large, { 'content-type': 'application/json' });
  t.equal(busy.status, 503, 'a large review waits behind it, and is refused after half the deadline');
  const started = Date.now();
  const ordinary = await server.post('/validate', small, { 'content-type': 'application/json' });
  t.equal(ordinary.status, 200, 'an ordinary review is answered meanwhile');
  t.ok(Date.now() - started < 400, `without waiting (${Date.now() - started} ms)`);
  chunked.end(small.slice(100));
  t.equal(await answer, 200, 'the chunked review is answered once complete');
  t.equal((await server.post('/validate', large, { 'content-type': 'application/json' })).status, 200, 'and its share is given back');
});

t.test('over HTTPS: a small review trickled past twice the deadline is cut off; idle keep-alive connections are not', async (t) => {
  // ordinary reviews had no receive bound at all: a sender could hold a connection for ever
  const server = await startTestServer({ policies: [await policyDir({ 'p.yaml': policyYaml('any', `${POD_RULE}\nvalidations:\n  - expression: "true"`) })], deadlineMs: 1000 });
  t.teardown(() => server.close());
  const body = Buffer.from(JSON.stringify(await readFixture('admissionreviews/pod-create-with-init-container.review.json')));
  const slow = request(`${server.url}/validate`, { method: 'POST', ca: server.ca, agent: false, headers: { 'content-type': 'application/json', 'content-length': body.length } });
  const outcome = new Promise<string>((resolve) => {
    slow.on('error', (err) => resolve(err.message));
    slow.on('response', (res: IncomingMessage) => (res.resume(), resolve(`answered ${res.statusCode}`)));
  });
  let sent = 0;
  const trickle = setInterval(() => sent < body.length - 10 && slow.write(body.subarray(sent, (sent += 10))), 100);
  const started = Date.now();
  const result = await Promise.race([outcome, new Promise<string>((r) => setTimeout(() => r('still open 6 s later'), 6000))]);
  clearInterval(trickle);
  slow.destroy();
  t.match(result, /answered 408|socket hang up|ECONNRESET/, `the trickling sender is cut off (${result} after ${Date.now() - started} ms)`);
  t.ok(Date.now() - started < 4000, 'at twice the deadline, checked every half deadline');
  // a keep-alive connection idle for longer than that between two reviews stays usable
  const agent = new Agent({ keepAlive: true, ca: server.ca, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const post = () => new Promise<{ status: number; socket: unknown }>((resolve, reject) => {
    const req = request(`${server.url}/validate`, { method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, socket: req.socket }));
    });
    req.on('error', reject);
    req.end(body);
  });
  const first = await post();
  await new Promise((r) => setTimeout(r, 3000));
  const second = await post();
  t.same([first.status, second.status], [200, 200]);
  t.equal(second.socket, first.socket, 'on the same connection');
});
