import type { AuditSink } from './types.js';

export class StdoutSink implements AuditSink {
  readonly id = 'stdout';
  readonly name = 'stdout';
  send(lines: readonly string[]): Promise<void> {
    return new Promise((resolve, reject) => process.stdout.write(`${lines.join('\n')}\n`, (err) => (err ? reject(err) : resolve())));
  }
}
