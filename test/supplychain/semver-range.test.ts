// Flux's OCIRepository semver resolution: the highest tag satisfying the range (Masterminds rules).
import t from 'tap';
import { highestMatchingTag } from '../../src/supplychain/semver-range.js';

const TAGS = ['latest', '0.9.0', '1.0.0', 'v1.2.3', '1.2.10', '1.3.0-rc.1', '1.3.0', '1.10.0', '2.0.0-beta.2', '2.0.0', 'main-abc123', '3'];

t.test('picks the highest tag that satisfies the range', async (t) => {
  const cases: [string, string | undefined][] = [
    ['*', '3'],
    ['>=1.0.0', '3'],
    ['>=1.0.0 <2.0.0', '1.10.0'],
    ['>= 1.0.0, < 2.0.0', '1.10.0'],
    ['1.2.x', '1.2.10'],
    ['~1.2.0', '1.2.10'],
    ['^1.2.0', '1.10.0'],
    ['^0.9', '0.9.0'],
    ['1.0.0 - 1.2.5', 'v1.2.3'],
    ['<1.0.0 || >=2.0.0 <3.0.0', '2.0.0'],
    ['>=1.3.0-0 <1.4.0', '1.3.0'],
    ['1.3.0-rc.1', '1.3.0-rc.1'],
    ['!=3', '2.0.0'],
    ['>=5', undefined],
  ];
  for (const [range, want] of cases) t.equal(highestMatchingTag(TAGS, range), want, range);
});

t.test('pre-releases only when the range names one', async (t) => {
  t.equal(highestMatchingTag(['2.0.0-beta.2', '1.0.0'], '>=1.0.0'), '1.0.0');
  t.equal(highestMatchingTag(['2.0.0-beta.2', '2.0.0-beta.10', '1.0.0'], '>=2.0.0-beta.1'), '2.0.0-beta.10');
});

t.test('a broken range is an error, not a match', async (t) => {
  t.throws(() => highestMatchingTag(TAGS, ''), { message: /empty/ });
  t.throws(() => highestMatchingTag(TAGS, '>=one'), { message: /not a version/ });
});
