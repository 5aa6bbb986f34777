import type { AuditSink } from './types.js';

export class StdoutSink implements AuditSink {
  readonly id = 'stdout';
  readonly name = 'stdout';
  send(lines: readonly string[]): Promise<void> {
    return this.sendJsonLines(Buffer.from(`${lines.join('\n')}\n`));
  }

  sendJsonLines(bytes: Buffer): Promise<void> {
    return new Promise((resolve, reject) => process.stdout.write(bytes, (err) => (err ? reject(err) : resolve())));
  }
}
