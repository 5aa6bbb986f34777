// Server configuration: precedence, coercion and the errors a mistyped setting gets.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ConfigError, flagOn, parseFlags, resolveServeConfig, serveFlagKinds } from '../src/config.js';

const resolve = (argv: string[], env: NodeJS.ProcessEnv = {}) => resolveServeConfig(parseFlags(argv, serveFlagKinds()), env);

function rejects(t: { ok(v: unknown, m: string): unknown; match(v: unknown, re: RegExp): unknown }, run: () => unknown, message: RegExp) {
  let err: unknown;
  try {
    run();
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof ConfigError, `${message}: a ConfigError`);
  t.match((err as Error).message, message);
}

t.test('flags > environment > config file > defaults', async (t) => {
  const dir = t.testdir({ 'c.yaml': 'deadline-ms: 3000\nauditSync: write\nlisten: 127.0.0.1:9000\nlog-level: debug\n' });
  const file = join(dir, 'c.yaml');
  t.equal(resolve([]).deadlineMs, 8000, 'default');
  t.equal(resolve(['--config', file]).deadlineMs, 3000, 'file, by flag name');
  t.equal(resolve(['--config', file]).auditSync, 'write', 'file, by key');
  t.same(resolve(['--config', file]).listen, { host: '127.0.0.1', port: 9000 });
  t.equal(resolve([], { TRUSTGATE_CONFIG: file, TRUSTGATE_DEADLINE_MS: '2000' }).deadlineMs, 2000, 'environment over file');
  t.equal(resolve(['--deadline-ms', '1000', '--config', file], { TRUSTGATE_DEADLINE_MS: '2000' }).deadlineMs, 1000, 'flag over environment');
  t.same(resolve([], { TRUSTGATE_POLICIES: 'a, b,' }).policies, ['a', 'b'], 'a list from the environment splits on commas');
  t.same(resolve(['--policies', 'a', '--policies', 'b']).policies, ['a', 'b'], 'a repeated flag adds up');
  t.equal(resolve([], { TRUSTGATE_DEADLINE_MS: '' }).deadlineMs, 8000, 'an empty variable is unset');
});

t.test('bool flags and variables mean what they say', async (t) => {
  t.equal(resolve(['--kubeconfig', 'k', '--pull-secrets']).pullSecrets, true);
  t.equal(resolve(['--kubeconfig', 'k', '--pull-secrets=false']).pullSecrets, false, '--x=false is false');
  t.equal(resolve(['--in-cluster=false'], { TRUSTGATE_IN_CLUSTER: 'true' }).inCluster, false, 'and overrides the environment');
  t.equal(resolve([], { TRUSTGATE_IN_CLUSTER: '1' }).inCluster, true);
  rejects(t, () => resolve([], { TRUSTGATE_IN_CLUSTER: 'yes' }), /TRUSTGATE_IN_CLUSTER: in-cluster must be true or false, got "yes"/);
  rejects(t, () => resolve(['--in-cluster=maybe']), /flag --in-cluster is true or false, got "maybe"/);
  const { values } = parseFlags(['--json', '--json=0'], { json: 'bool' });
  t.equal(flagOn(values, 'json'), false, 'the last occurrence wins');
  t.equal(flagOn(parseFlags([], { json: 'bool' }).values, 'json'), false, 'absent is false');
});

t.test('mistyped settings are errors that say what was meant', async (t) => {
  const dir = t.testdir({});
  const file = join(dir, 'c.yaml');
  writeFileSync(file, 'deadline-msec: 3000\n');
  rejects(t, () => resolve(['--config', file]), /c\.yaml: unknown option deadline-msec \(did you mean "deadline-ms"\?\)/);
  writeFileSync(file, '- a\n- b\n');
  rejects(t, () => resolve(['--config', file]), /a config file is a mapping of option names/);
  rejects(t, () => resolve(['--config', join(dir, 'missing.yaml')]), /cannot read config file .*missing\.yaml/);
  rejects(t, () => resolve(['--deadlne-ms', '5']), /unknown flag --deadlne-ms \(did you mean "deadline-ms"\?\)/);
  rejects(t, () => resolve(['--deadline-ms', '8s']), /--deadline-ms: deadline-ms must be a positive number, got "8s"/);
  rejects(t, () => resolve(['--deadline-ms', '0']), /deadline-ms must be a positive number, got "0"/);
  rejects(t, () => resolve(['--shutdown-delay-ms', '-1']), /shutdown-delay-ms must be a non-negative number, got "-1"/);
  t.equal(resolve(['--shutdown-delay-ms', '0']).shutdownDelayMs, 0, 'no shutdown delay is a choice');
  rejects(t, () => resolve(['--client-name', 'kube-apiserver']), /--client-name needs --client-ca/);
  rejects(t, () => resolve(['--log-level', 'verbose']), /--log-level must be one of fatal, error, warn, info, debug, trace, silent, got "verbose"/);
  rejects(t, () => resolve(['--audit', 'kafka://x']), /audit sink "kafka:\/\/x" is not supported/);
  rejects(t, () => resolve(['--listen', ':99999']), /is not HOST:PORT/);
  rejects(t, () => resolve(['--deadline-ms']), /flag --deadline-ms needs a value/);
});

t.test('checkpoint cadence and the replica name (signed into checkpoints) are checked', async (t) => {
  t.match(resolve(['--audit-signing-key', 'k.key']), { auditSigningKey: 'k.key', auditCheckpointRecords: 1000, auditCheckpointMs: 1000 });
  t.match(resolve([], { TRUSTGATE_AUDIT_CHECKPOINT_RECORDS: '50', TRUSTGATE_AUDIT_CHECKPOINT_MS: '250' }), { auditCheckpointRecords: 50, auditCheckpointMs: 250 });
  t.throws(() => resolve(['--audit-checkpoint-records', '0']), /audit-checkpoint-records must be a positive number/);
  t.throws(() => resolve(['--audit-checkpoint-records', '2.5']), /--audit-checkpoint-records must be a whole number from 1 to 1000000/);
  t.throws(() => resolve(['--audit-checkpoint-ms', '86400000']), /--audit-checkpoint-ms must be a whole number from 1 to 3600000/);
  t.throws(() => resolve(['--replica', 'a\tb']), /--replica must be 1 to 253 printable characters/);
});
