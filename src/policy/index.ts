export { loadPolicySet, subsetPolicySet, configMapNamespaces, type PolicySet, type LoadResult } from './load.js';
export { policiesNeverFailed, runPolicyTests, type CaseOutcome, type TestCase } from './testing.js';
export { junitReport } from './junit.js';
export { PolicyStore, type ReloadListener } from './store.js';
export { evaluatePolicy, EvaluationContext, type PolicyResult, type ReasonCode, type ExplainStep, type ParamsLookup } from './evaluate.js';
export { PolicyIndex, type NamespaceLookup } from './match.js';
export { PolicyFileError, type CompiledPolicy, type Mode, type FailurePolicy } from './types.js';
export { POLICY_SCHEMA_PATH } from './schema.js';
export { parseYamlDocuments } from './documents.js';
