// What requests share with each other: image references, parsed once.
import t from 'tap';
import { parsedReference } from '../../src/policy/images-rule.js';
import { ReferenceError } from '../../src/supplychain/oci/index.js';

t.test('a parsed reference is shared by later requests, and frozen so none can change it for the others', async (t) => {
  const first = parsedReference('nginx:1.27');
  const later = parsedReference('nginx:1.27');
  t.equal(first, later, 'the same object');
  t.ok(Object.isFrozen(first));
  t.throws(() => Object.assign(first, { digest: 'sha256:' + '0'.repeat(64) }), { name: 'TypeError' });
  t.match(first, { registry: 'docker.io', repository: 'library/nginx', tag: '1.27', normalized: 'docker.io/library/nginx:1.27' });
});

t.test('invalid references are errors each time, never kept; over-long ones are parsed but not kept', async (t) => {
  const bad = parsedReference('Bad Image');
  t.ok(bad instanceof ReferenceError);
  t.not(parsedReference('Bad Image'), bad, 'parsed again');
  const long = `registry.example/${'a'.repeat(600)}:1`;
  const once = parsedReference(long);
  t.match(once, { registry: 'registry.example' });
  t.not(parsedReference(long), once, 'not kept');
});
