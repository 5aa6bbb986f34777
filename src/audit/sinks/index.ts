// Sink specs as given to --audit: stdout, file:PATH, http(s)://URL, postgres://URL,
// syslog+tls://HOST:PORT, syslog+tcp://HOST:PORT. --audit-ca serves the TLS ones.
import { FileSink } from './file.js';
import { HttpSink, type HttpSinkOptions } from './http.js';
import { PostgresSink } from './postgres.js';
import { SyslogSink } from './syslog.js';
import { StdoutSink } from './stdout.js';
import type { AuditSink } from './types.js';

export interface SinkOptions extends HttpSinkOptions {
  /** what a sink has to say beyond failing a delivery (a record its receiver will likely cut) */
  warn?: (message: string, fields: Record<string, unknown>) => void;
}

export function createSink(spec: string, http: SinkOptions = {}): AuditSink {
  if (spec === 'stdout') return new StdoutSink();
  if (spec.startsWith('file:')) return new FileSink(spec.slice('file:'.length));
  if (/^https?:\/\//.test(spec)) return new HttpSink(spec, http);
  if (/^postgres(ql)?:\/\//.test(spec)) return new PostgresSink(spec);
  if (/^syslog\+(tcp|tls):\/\//.test(spec)) return new SyslogSink(spec, { ca: http.ca, warn: http.warn });
  throw new Error(`unknown audit sink ${JSON.stringify(spec)}`);
}
export { HEADER_LINE_ERROR, isHeaderLine, parseHeaderLines } from './headers.js';
