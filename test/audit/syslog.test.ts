// The syslog sinks against a real rsyslogd, over TCP and over TLS: RFC 5424 messages with
// structured data, octet-counted framing, and delivery after rsyslogd was down.
import t from 'tap';
import { rsyslogOrSkip } from '../helpers/rsyslog.js';
import { policyDir, policyYaml, POD_RULE } from '../helpers/policies.js';
import { readFixture, startTestServer } from '../helpers/server.js';
import { eventually } from '../helpers/eventually.js';
import { createServer, type AddressInfo } from 'node:net';
import { verifyRecords } from '../../src/audit/index.js';
import { SyslogSink } from '../../src/audit/sinks/syslog.js';
import { makeRecord } from '../helpers/audit.js';

const policies = policyYaml('team-label', `${POD_RULE}\nvalidations:\n  - expression: "has(object.metadata.labels) && 'team' in object.metadata.labels"\n    message: pods need a team label`);

async function review(i: number) {
  const r = await readFixture('admissionreviews/pod-create-with-init-container.review.json');
  r.request.uid = `sys-${i}`;
  return r;
}

for (const tls of [false, true]) {
  t.test(`syslog+${tls ? 'tls' : 'tcp'}: decisions reach rsyslog as RFC 5424 with structured data, also after it was down`, async (t) => {
    const rsyslog = await rsyslogOrSkip(t, tls);
    if (!rsyslog) return;
    t.teardown(() => rsyslog.close());
    // the syslog+tls sink trusts the CA that signed the test rsyslogd's certificate
    const auditCa = rsyslog.ca ? await writeCa(rsyslog.ca) : undefined;
    const live = await startTestServer({ policies: [await policyDir({ 'p.yaml': policies })], audit: [rsyslog.spec], auditCa });
    t.teardown(() => live.close());

    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await live.post('/validate', await review(i))).json().response.auditAnnotations['decision-id']);
    await eventually(async () => rsyslog.received().length === 5, 'five messages at rsyslog');
    const first = rsyslog.received()[0]!;
    t.match(first, /^133 test-0 trustgate decision \[trustgate@32473 decisionId="[0-9a-f-]{36}" replica="test-0" seq="1" allowed="false" namespace="default" kind="Pod" name="nginx" operation="CREATE" user="kubernetes-admin" failing="team-label"\] \{/);
    t.same(rsyslog.received().map((l) => /decisionId="([^"]+)"/.exec(l)![1]), ids);
    const records = rsyslog.received().map((l, i) => ({ position: i + 1, text: l.slice(l.indexOf('] {') + 2) }));
    t.same(verifyRecords(records).problems, [], 'the records in MSG arrive intact and chained');

    await rsyslog.stop();
    for (let i = 5; i < 10; i++) await live.post('/validate', await review(i));
    await rsyslog.start();
    await eventually(async () => new Set(rsyslog.received().map((l) => /seq="(\d+)"/.exec(l)![1])).size === 10, 'all ten after the restart', 60_000);
    t.pass('every decision arrived after rsyslogd came back (at least once)');
    const secret = await review(99);
    secret.request.object.spec.containers[0].env = [{ name: 'PASSWORD', value: 'syslog-s3cr3t-value' }];
    secret.request.userInfo.extra = { token: ['syslog-extra-token'] };
    await live.post('/validate', secret);
    await eventually(async () => rsyslog.received().some((l) => l.includes('"uid":"sys-99"')), 'the secret-laden decision');
    t.notMatch(rsyslog.received().join('\n'), /syslog-s3cr3t-value|syslog-extra-token/, 'no secret reached syslog');
  });
}

async function writeCa(ca: Buffer): Promise<string> {
  const { mkdtemp, writeFile } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const file = join(await mkdtemp(join(tmpdir(), 'tg-ca-')), 'ca.crt');
  await writeFile(file, ca);
  return file;
}

t.test('a record over rsyslog\'s default 8k arrives cut, so the sink warns once; with a larger maxMessageSize it arrives whole', async (t) => {
  const { SyslogSink } = await import('../../src/audit/sinks/syslog.js');
  const { HashChain } = await import('../../src/audit/index.js');
  const { makeRecord } = await import('../helpers/audit.js');
  const chain = new HashChain();
  const big = makeRecord();
  big.policies = [{ name: 'p', revision: 'r', mode: 'enforce', result: 'fail', messages: Array.from({ length: 10 }, (_, i) => `message ${i} ${'x'.repeat(2000)}`) }];
  const lines = [chain.sealToLine(makeRecord()), chain.sealToLine(big), chain.sealToLine(makeRecord())];
  for (const size of [undefined, '64k']) {
    const rsyslog = await rsyslogOrSkip(t, false, size);
    if (!rsyslog) return;
    t.teardown(() => rsyslog.close());
    const warnings: unknown[] = [];
    const sink = new SyslogSink(rsyslog.spec, { warn: (message, fields) => warnings.push({ message, ...fields }) });
    t.teardown(() => sink.close?.());
    await sink.send(lines);
    await sink.send(lines);
    await eventually(async () => rsyslog.received().length === 6, 'six messages at rsyslog');
    t.match(warnings, [{ message: /longer than 8 KiB, the default message size limit of rsyslog.*maxMessageSize/, sink: rsyslog.spec }], 'one warning, whatever the receiver');
    t.equal(warnings.length, 1);
    const records = rsyslog.received().slice(0, 3).map((l, i) => ({ position: i + 1, text: l.slice(l.indexOf('] {') + 2) }));
    if (size) t.same(verifyRecords(records).problems, [], 'with room for it, the large record arrives intact');
    else t.ok(rsyslog.received()[1]!.length < 8300, 'with the default, rsyslog cuts it: what the warning is for');
  }
});

t.test('a batch whose connection closes while its slices are written fails, to be sent again, and nothing is left unhandled', async (t) => {
  // a receiver that hangs up on every connection at once
  const receiver = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  t.teardown(() => receiver.close());
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  t.teardown(() => process.off('unhandledRejection', onUnhandled));
  const sink = new SyslogSink(`syslog+tcp://127.0.0.1:${(receiver.address() as AddressInfo).port}`);
  const lines = Array.from({ length: 500 }, () => JSON.stringify(makeRecord()));
  await t.rejects(sink.send(lines), 'the batch is not counted as delivered');
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.same(unhandled, [], 'every failed write of the batch was handled');
});
