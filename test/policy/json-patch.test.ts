// RFC 6902 as MutatingAdmissionPolicies apply it, and the patch /mutate answers with.
import fc from 'fast-check';
import t from 'tap';
import { applyJsonPatch, diffPatch, JsonPatchError, parsePointer } from '../../src/policy/mutation/json-patch.js';
import { mergeApplyConfiguration } from '../../src/policy/mutation/apply-configuration.js';

t.test('the six operations, in order, on a copy', async (t) => {
  const doc = { a: { b: [1, 2] }, 'x/y': 1, 't~': 2 };
  const out = applyJsonPatch(doc, [
    { op: 'add', path: '/a/b/1', value: 9 },
    { op: 'add', path: '/a/b/-', value: 3 },
    { op: 'remove', path: '/x~1y' },
    { op: 'replace', path: '/t~0', value: 'two' },
    { op: 'copy', from: '/a/b', path: '/c' },
    { op: 'move', from: '/c', path: '/d' },
    { op: 'test', path: '/d/0', value: 1 },
  ]);
  t.same(out, { a: { b: [1, 9, 2, 3] }, 't~': 'two', d: [1, 9, 2, 3] });
  t.same(doc, { a: { b: [1, 2] }, 'x/y': 1, 't~': 2 }, 'the input is left alone');
  t.equal(applyJsonPatch(doc, [{ op: 'add', path: '/n', value: 1 }, { op: 'test', path: '/a/b', value: [2, 1] }]), 'test-failed');
});

t.test('bad operations are clear errors naming the operation', async (t) => {
  const fails = (ops: never[], re: RegExp) => t.throws(() => applyJsonPatch({ a: [1] }, ops), { constructor: JsonPatchError, message: re });
  fails([{ op: 'add', path: '/missing/x', value: 1 }] as never[], /operation 0 \(add \/missing\/x\): .*"missing" does not exist/);
  fails([{ op: 'remove', path: '/b' }] as never[], /path \/b does not exist: nothing to remove/);
  fails([{ op: 'replace', path: '/a/1', value: 1 }] as never[], /index 1 is out of range/);
  fails([{ op: 'add', path: '/a/01', value: 1 }] as never[], /"01" is not an array index/);
  fails([{ op: 'add', path: 'a', value: 1 }] as never[], /must start with "\/"/);
  fails([{ op: 'move', from: '/a', path: '/a/0' }] as never[], /cannot move \/a into itself/);
  fails([{ op: 'merge', path: '/a' }] as never[], /unknown op "merge"/);
  t.throws(() => parsePointer('/a~2'), /not "~0" or "~1"/);
});

t.test('the diff of two objects, applied to the first, gives the second', async (t) => {
  const json = fc.letrec((tie) => ({
    value: fc.oneof({ depthSize: 'small' }, fc.integer(), fc.string(), fc.boolean(), fc.constant(null), tie('array'), tie('object')),
    array: fc.array(tie('value'), { maxLength: 4 }),
    object: fc.dictionary(fc.string({ maxLength: 4 }), tie('value'), { maxKeys: 4 }),
  }));
  fc.assert(fc.property(json.object, json.object, (a, b) => {
    t.same(applyJsonPatch(a, diffPatch(a, b)), b);
  }), { numRuns: 500 });
});

t.test('apply configurations: keyless map-list items and nulls are refused, unknown kinds\' lists are atomic', async (t) => {
  const pod = { kind: 'Pod', spec: { containers: [{ name: 'a' }] } };
  t.throws(() => mergeApplyConfiguration(pod, { spec: { containers: [{ image: 'x' }] } }), /\.spec\.containers: an item lacks its key name/);
  t.throws(() => mergeApplyConfiguration(pod, { spec: { nodeName: null } }), /null cannot remove a field/);
  t.throws(() => mergeApplyConfiguration({ kind: 'Widget', spec: { items: [] } }, { spec: { items: ['a'] } }), /may not mutate atomic arrays, maps or structs: \.spec\.items/);
  t.throws(() => mergeApplyConfiguration({ kind: 'Service' }, { spec: { selector: { app: 'x' } } }), /\.spec\.selector/);
  t.same(mergeApplyConfiguration({ kind: 'Service', spec: { ports: [{ port: 80, name: 'a' }] } }, { spec: { ports: [{ port: 80, protocol: 'TCP', targetPort: 8080 }] } }),
    { kind: 'Service', spec: { ports: [{ port: 80, name: 'a', protocol: 'TCP', targetPort: 8080 }] } });
  t.same(mergeApplyConfiguration({ kind: 'Deployment', spec: { template: { spec: { containers: [{ name: 'a', env: [{ name: 'X', value: '1' }, { name: 'X', value: '2' }] }] } } } },
    { spec: { template: { spec: { containers: [{ name: 'a', env: [{ name: 'X', value: '3' }] }] } } } }).spec,
  { template: { spec: { containers: [{ name: 'a', env: [{ name: 'X', value: '3' }] }] } } }, 'duplicate keys become the one merged item, as server-side apply makes them');
});

t.test('"__proto__" is a key like any other: never the prototype', async (t) => {
  const added = applyJsonPatch({}, [{ op: 'add', path: '/__proto__', value: { polluted: true } }]) as Record<string, unknown>;
  t.equal(Object.getPrototypeOf(added), Object.prototype);
  t.same(Object.keys(added), ['__proto__']);
  t.equal(({} as Record<string, unknown>).polluted, undefined);
  const merged = mergeApplyConfiguration({ kind: 'Pod' }, JSON.parse('{"metadata": {"__proto__": {"polluted": true}}}'));
  t.equal(Object.getPrototypeOf(merged.metadata), Object.prototype);
  t.same(JSON.parse(JSON.stringify(merged)), JSON.parse('{"kind": "Pod", "metadata": {"__proto__": {"polluted": true}}}'));
});

t.test('items inserted or removed at one place are said so, not as a replace of every item after', async (t) => {
  const a = { spec: { containers: [{ name: 'a' }, { name: 'b' }] } };
  t.same(diffPatch(a, { spec: { containers: [{ name: 'proxy' }, { name: 'a' }, { name: 'b' }] } }), [{ op: 'add', path: '/spec/containers/0', value: { name: 'proxy' } }]);
  t.same(diffPatch(a, { spec: { containers: [{ name: 'a' }, { name: 'x' }, { name: 'y' }, { name: 'b' }] } }), [
    { op: 'add', path: '/spec/containers/1', value: { name: 'x' } },
    { op: 'add', path: '/spec/containers/2', value: { name: 'y' } },
  ]);
  t.same(diffPatch(a, { spec: { containers: [{ name: 'b' }] } }), [{ op: 'remove', path: '/spec/containers/0' }]);
  t.same(diffPatch(a, { spec: { containers: [{ name: 'c' }] } }), [{ op: 'replace', path: '/spec/containers/0/name', value: 'c' }, { op: 'remove', path: '/spec/containers/1' }], 'a change that is no splice: item by item');
});

t.test('splices of random lists, diffed then applied, give the spliced list', async (t) => {
  const item = fc.oneof(fc.integer({ min: 0, max: 3 }), fc.record({ name: fc.constantFrom('a', 'b', 'c') }));
  fc.assert(fc.property(fc.array(item, { maxLength: 6 }), fc.nat(), fc.nat({ max: 3 }), fc.array(item, { maxLength: 3 }), (list, at, removed, inserted) => {
    const i = list.length ? at % (list.length + 1) : 0;
    const after = [...list.slice(0, i), ...inserted, ...list.slice(i + removed)];
    t.same(applyJsonPatch({ l: list }, diffPatch({ l: list }, { l: after })), { l: after });
  }), { numRuns: 500 });
});
