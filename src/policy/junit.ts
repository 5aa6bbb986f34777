// `trustgate test --junit FILE`: the outcomes as JUnit XML, which CI systems (GitLab, Jenkins,
// GitHub test reporters) show per case beside the pipeline that changed the policies.
import type { CaseOutcome } from './testing.js';

/** Text safe in XML: the five entities escaped, characters XML 1.0 cannot hold dropped. */
function xml(text: string): string {
  return text
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '')
    .replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '')
    .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

export function junitReport(outcomes: readonly CaseOutcome[]): string {
  const suites = new Map<string, CaseOutcome[]>();
  for (const o of outcomes) {
    const cases = suites.get(o.suite);
    if (cases) cases.push(o);
    else suites.set(o.suite, [o]);
  }
  const failures = (list: readonly CaseOutcome[]) => list.filter((o) => !o.passed).length;
  const lines = ['<?xml version="1.0" encoding="UTF-8"?>', `<testsuites name="trustgate" tests="${outcomes.length}" failures="${failures(outcomes)}">`];
  for (const [suite, cases] of suites) {
    lines.push(`  <testsuite name="${xml(suite)}" tests="${cases.length}" failures="${failures(cases)}">`);
    for (const c of cases) {
      const open = `    <testcase classname="${xml(suite)}" name="${xml(c.name)}"`;
      if (c.passed) lines.push(`${open}/>`);
      else lines.push(`${open}>`, `      <failure message="${xml((c.detail ?? 'failed').split('\n')[0]!.slice(0, 500))}">${xml(c.detail ?? '')}</failure>`, '    </testcase>');
    }
    lines.push('  </testsuite>');
  }
  lines.push('</testsuites>', '');
  return lines.join('\n');
}
