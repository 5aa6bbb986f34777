// A PolicyException through the real TLS server: the API server's answer, the audit record
// and the metrics an alert on expiring exceptions reads.
import t from 'tap';
import { exceptionYaml, policyDir, policyYaml, POD_RULE } from '../helpers/policies.js';
import { readFixture, startTestServer } from '../helpers/server.js';

t.test('a waived denial over HTTPS: allowed with a warning, counted, its expiry exported', async (t) => {
  const policies = await policyDir({
    'p.yaml': policyYaml('team-label', `${POD_RULE}\nvalidations:\n  - expression: "'team' in object.metadata.?labels.orValue({})"\n    message: pods need a team label`),
    'e.yaml': exceptionYaml('default-namespace', `policies: [team-label]
reason: the default namespace is being cleaned up
ticket: PLAT-12
expires: "2999-01-01T00:00:00Z"
match: { namespaces: [default] }`),
  });
  const server = await startTestServer({ policies: [policies] });
  t.teardown(() => server.close());
  const review = await readFixture('admissionreviews/pod-create-with-init-container.review.json');
  const res = await server.post('/validate', review);
  t.equal(res.status, 200);
  const { response } = res.json();
  t.equal(response.allowed, true);
  t.same(response.warnings, ['[team-label] excepted by default-namespace (PLAT-12) until 2999-01-01T00:00:00.000Z: pods need a team label']);

  const metrics = (await server.get('/metrics')).text;
  t.match(metrics, /trustgate_policy_exceptions_applied_total\{exception="default-namespace",policy="team-label"\} 1\n/);
  t.match(metrics, /trustgate_policy_results_total\{policy="team-label",mode="enforce",result="excepted",code="VALIDATION_FAILED"\} 1\n/);
  t.match(metrics, new RegExp(`trustgate_policy_exception_expiry_timestamp_seconds\\{exception="default-namespace"\\} ${Date.parse('2999-01-01T00:00:00Z') / 1000}\\n`));
});
