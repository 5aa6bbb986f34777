// `trustgate scan --format sarif`: findings as SARIF 2.1.0, the format code-scanning services
// (GitHub code scanning, GitLab, Azure DevOps) annotate a change with, at the manifest line.
import { relative, sep } from 'node:path';
import type { ScanFinding } from './scan.js';

const SCHEMA = 'https://json.schemastore.org/sarif-2.1.0.json';

/** a manifest path as a SARIF artifact URI: relative to the working directory (the repository), forward slashes */
function artifactUri(file: string, cwd: string): string {
  return relative(cwd, file).split(sep).map(encodeURIComponent).join('/');
}

/**
 * One result per failing policy of each denied or would-be-denied object: `error` for what is
 * denied now, `warning` for what a switch to enforce, or an exception's expiry, would deny. The rule id is the policy name,
 * stable across runs, so services match a result to the one before it.
 */
export function sarifReport(findings: readonly ScanFinding[], options: { version: string; cwd?: string }): object {
  const cwd = options.cwd ?? process.cwd();
  const rules = new Map<string, { id: string; shortDescription: { text: string } }>();
  const results: object[] = [];
  for (const f of findings) {
    if (f.verdict === 'allow') continue;
    const object = `${f.apiVersion}/${f.kind}/${f.namespace ? `${f.namespace}/` : ''}${f.name ?? ''}`;
    for (const p of f.policies) {
      rules.set(p.name, { id: p.name, shortDescription: { text: `trustgate policy ${p.name}` } });
      // an exception's waiver is said in the message itself, with its expiry
      const excepted = p.result === 'excepted';
      const denies = f.verdict === 'deny' && p.mode === 'enforce' && !excepted;
      results.push({
        ruleId: p.name,
        level: denies ? 'error' : 'warning',
        message: { text: `${f.kind} ${f.namespace ? `${f.namespace}/` : ''}${f.name ?? '(unnamed)'}: ${p.messages.join('; ') || p.result}${denies || excepted ? '' : ` (${p.mode} mode: denied once it enforces)`}` },
        // a file in the repository gets its line annotated; an object from stdin or a cluster only its name
        ...(f.file && f.file !== '<stdin>' ? { locations: [{ physicalLocation: { artifactLocation: { uri: artifactUri(f.file, cwd) }, region: { startLine: f.line ?? 1 } } }] } : {}),
        logicalLocations: [{ fullyQualifiedName: object, kind: 'object' }],
        properties: { mode: p.mode, result: p.result, ...(p.code ? { code: p.code } : {}) },
      });
    }
  }
  return {
    $schema: SCHEMA,
    version: '2.1.0',
    runs: [{ tool: { driver: { name: 'trustgate', version: options.version, rules: [...rules.values()] } }, results }],
  };
}
