// The admission-path counters keep their counts outside prom-client until the registry is
// read: a scrape must still see every increment, exactly once.
import t from 'tap';
import { createMetrics } from '../../src/server/index.js';

t.test('hot counters reach the scrape exactly, across scrapes', async (t) => {
  const metrics = createMetrics({ defaultMetrics: false });
  for (let i = 0; i < 3; i++) metrics.policyResults.hot('p', 'enforce', 'fail', 'VALIDATION_FAILED');
  metrics.policyResults.hot('q', 'warn', 'pass', '');
  metrics.requests.hot('validate', '200');
  let text = await metrics.registry.metrics();
  t.match(text, /trustgate_policy_results_total\{policy="p",mode="enforce",result="fail",code="VALIDATION_FAILED"\} 3\n/);
  t.match(text, /trustgate_policy_results_total\{policy="q",mode="warn",result="pass",code=""\} 1\n/);
  t.match(text, /trustgate_admission_requests_total\{endpoint="validate",code="200"\} 1\n/);
  metrics.policyResults.hot('p', 'enforce', 'fail', 'VALIDATION_FAILED');
  text = await metrics.registry.metrics();
  t.match(text, /trustgate_policy_results_total\{policy="p",mode="enforce",result="fail",code="VALIDATION_FAILED"\} 4\n/, 'counted once, not re-added');
  text = await metrics.registry.metrics();
  t.match(text, /code="VALIDATION_FAILED"\} 4\n/, 'an idle scrape changes nothing');
  t.same((await metrics.decisions.get()).values, [], 'get() works too, with nothing counted');
});
