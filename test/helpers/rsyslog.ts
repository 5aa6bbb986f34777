// rsyslogd on a loopback port, writing what it receives to a file: plain TCP or TLS (GnuTLS).
// Missing rsyslog skips with a notice, except under CI=true, where that is a failure.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { freePort, serviceOrSkip } from './services.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateCertificates } from '../../src/server/index.js';

export interface Rsyslog {
  spec: string;
  ca?: Buffer;
  received(): string[];
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}


async function listening(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = connect(port, '127.0.0.1', () => (c.end(), resolve(true)));
      c.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('rsyslogd did not listen');
}

/** maxMessageSize: rsyslog's limit on one message (its default 8k cuts longer ones) */
export async function startRsyslog(tls: boolean, maxMessageSize?: string): Promise<Rsyslog | string> {
  const rsyslogd = ['/usr/sbin/rsyslogd', '/sbin/rsyslogd'].find((p) => existsSync(p));
  if (!rsyslogd) return 'rsyslog is not installed (apt-get install rsyslog rsyslog-gnutls)';
  const dir = mkdtempSync(join(tmpdir(), 'tg-rsyslog-'));
  const port = await freePort();
  const out = join(dir, 'received.log');
  let ca: Buffer | undefined;
  let tlsConfig = '';
  if (tls) {
    const certs = await generateCertificates(join(dir, 'certs'), ['localhost', '127.0.0.1']);
    ca = readFileSync(certs.caCert);
    tlsConfig = `global(DefaultNetstreamDriver="gtls" DefaultNetstreamDriverCAFile="${certs.caCert}" DefaultNetstreamDriverCertFile="${certs.cert}" DefaultNetstreamDriverKeyFile="${certs.key}")\n`;
  }
  writeFileSync(join(dir, 'rsyslog.conf'), `global(workDirectory="${dir}"${maxMessageSize ? ` maxMessageSize="${maxMessageSize}"` : ''})
${tlsConfig}module(load="imtcp"${tls ? ' StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.Authmode="anon"' : ''})
input(type="imtcp" port="${port}" address="127.0.0.1")
template(name="tg" type="string" string="%pri% %hostname% %app-name% %msgid% %structured-data% %msg%\\n")
if $app-name == "trustgate" then action(type="omfile" file="${out}" template="tg")
`);
  let proc: ChildProcess | undefined;
  const start = async () => {
    proc = spawn(rsyslogd, ['-n', '-f', join(dir, 'rsyslog.conf'), '-i', join(dir, 'rsyslogd.pid')], { stdio: 'ignore' });
    await listening(port);
  };
  const stop = async () => {
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc!.once('exit', r));
    proc.kill('SIGTERM');
    await exited;
  };
  await start();
  return {
    spec: `syslog+${tls ? 'tls' : 'tcp'}://127.0.0.1:${port}`,
    ca,
    received: () => (existsSync(out) ? readFileSync(out, 'utf8').split('\n').filter(Boolean) : []),
    start,
    stop,
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const rsyslogOrSkip = (t: Parameters<typeof serviceOrSkip>[0], tls: boolean, maxMessageSize?: string) => serviceOrSkip(t, 'rsyslog', () => startRsyslog(tls, maxMessageSize));
