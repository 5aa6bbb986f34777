// What every images policy of a request shares, and what requests share with each other.
import t from 'tap';
import { reviewForObject } from '../../src/admission/synthesize.js';
import { parseReview } from '../../src/admission/index.js';
import type { KubeObject } from '../../src/admission/types.js';
import { RequestImages } from '../../src/policy/images-rule.js';
import { ReferenceError } from '../../src/supplychain/oci/index.js';

const requestOf = (...images: string[]) =>
  parseReview(reviewForObject({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'n' }, spec: { containers: images.map((image, i) => ({ name: `c${i}`, image })) } } as KubeObject, { namespace: 'n' }));

t.test('a parsed reference is shared by later requests, and frozen so none can change it for the others', async (t) => {
  const first = new RequestImages(requestOf('nginx:1.27')).parse('nginx:1.27');
  const later = new RequestImages(requestOf('nginx:1.27')).parse('nginx:1.27');
  t.equal(first, later, 'the same object');
  t.ok(Object.isFrozen(first));
  t.throws(() => Object.assign(first, { digest: 'sha256:' + '0'.repeat(64) }), { name: 'TypeError' });
  t.match(first, { registry: 'docker.io', repository: 'library/nginx', tag: '1.27', normalized: 'docker.io/library/nginx:1.27' });
});

t.test('invalid references are errors each time, never kept; over-long ones are parsed but not kept', async (t) => {
  const images = new RequestImages(requestOf('Bad Image'));
  const bad = images.parse('Bad Image');
  t.ok(bad instanceof ReferenceError);
  t.not(images.parse('Bad Image'), bad, 'parsed again');
  const long = `registry.example/${'a'.repeat(600)}:1`;
  const once = images.parse(long);
  t.match(once, { registry: 'registry.example' });
  t.not(images.parse(long), once, 'not kept');
});
