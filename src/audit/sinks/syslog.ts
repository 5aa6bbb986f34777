// RFC 5424 syslog over TCP or TLS with octet-counted framing (RFC 6587), one message per
// decision: structured data carries the fields a SIEM filters on, MSG the whole record.
// TCP has no application acknowledgement: a batch counts as delivered once the socket has
// written it; on any error the connection is dropped and the batch retried (at least once).
import { createHash } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { DecisionRecord } from '../record.js';
import { inSlices } from './slices.js';
import type { AuditSink } from './types.js';

const FACILITY_LOCAL0 = 16;
const SEVERITY = { denied: 5 /* notice */, allowed: 6 /* info */ };
// the SD-ID's enterprise number is the documentation one (RFC 5612) until trustgate has its own
export const SD_ID = 'trustgate@32473';

const sdValue = (v: unknown) => String(v ?? '').replace(/[\\"\]]/g, (c) => `\\${c}`);
const header = (v: string) => (v ? v.replace(/[^\x21-\x7e]/g, '_').slice(0, 255) : '-');

export function syslogMessage(line: string): string {
  const r = JSON.parse(line) as DecisionRecord;
  const pri = FACILITY_LOCAL0 * 8 + (r.allowed ? SEVERITY.allowed : SEVERITY.denied);
  const failing = r.policies.filter((p) => p.result !== 'pass').map((p) => p.name).join(',');
  const sd = `[${SD_ID} decisionId="${sdValue(r.decisionId)}" replica="${sdValue(r.replica)}" seq="${sdValue(r.seq)}" allowed="${r.allowed}"` +
    ` namespace="${sdValue(r.request.namespace)}" kind="${sdValue(r.request.kind.kind)}" name="${sdValue(r.request.name)}"` +
    ` operation="${sdValue(r.request.operation)}" user="${sdValue(r.request.userInfo.username)}" failing="${sdValue(failing)}"]`;
  return `<${pri}>1 ${r.time} ${header(r.replica)} trustgate ${process.pid} decision ${sd} ${line}`;
}

/**
 * rsyslog's default maxMessageSize: a longer message arrives cut, and a cut record is neither
 * valid JSON nor verifiable. TCP carries no answer, so only a warning can say so.
 */
export const COMMON_RECEIVER_LIMIT = 8 * 1024;

export class SyslogSink implements AuditSink {
  readonly id: string;
  readonly name: string;
  readonly #host: string;
  readonly #port: number;
  readonly #tls: boolean;
  #socket?: Socket;
  #warnedSize = false;

  constructor(spec: string, private readonly options: { ca?: Buffer; warn?: (message: string, fields: Record<string, unknown>) => void } = {}) {
    const m = /^syslog\+(tcp|tls):\/\/([^/:]+|\[[^\]]+\]):(\d+)\/?$/.exec(spec);
    if (!m) throw new Error(`syslog sink ${JSON.stringify(spec)}: expected syslog+tls://HOST:PORT or syslog+tcp://HOST:PORT`);
    this.#tls = m[1] === 'tls';
    this.#host = m[2]!.replace(/^\[|\]$/g, '');
    this.#port = Number(m[3]);
    this.name = spec;
    this.id = `syslog-${createHash('sha256').update(spec).digest('hex').slice(0, 12)}`;
  }

  #connect(): Promise<Socket> {
    if (this.#socket && !this.#socket.destroyed) return Promise.resolve(this.#socket);
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      const socket = this.#tls
        ? tlsConnect({ host: this.#host, port: this.#port, ca: this.options.ca, servername: this.#host, minVersion: 'TLSv1.2' }, () => ready())
        : netConnect({ host: this.#host, port: this.#port }, () => ready());
      const ready = () => {
        socket.off('error', onError);
        socket.on('error', () => socket.destroy());
        socket.setKeepAlive(true);
        this.#socket = socket;
        resolve(socket);
      };
      socket.once('error', onError);
      socket.setTimeout(10_000, () => socket.destroy(new Error(`${this.name}: connection timed out`)));
    });
  }

  async send(lines: readonly string[]): Promise<void> {
    const socket = await this.#connect();
    // a slice's frames are written as soon as they are formatted; any failed write fails the
    // batch, which is then sent again whole (at least once, as before)
    const writes: Promise<void>[] = [];
    let cut = false;
    for await (const slice of inSlices(lines)) {
      if (socket.destroyed) {
        cut = true; // the rest cannot go out on this connection: the batch fails below
        break;
      }
      const written = this.#write(socket, slice.map((l) => this.#frame(l)).join(''));
      written.catch(() => undefined); // handled now: it may fail while later slices are formatted
      writes.push(written);
    }
    await Promise.all(writes);
    if (cut) throw new Error(`${this.name}: the connection closed while the batch was written`);
  }

  #frame(line: string): string {
    const msg = syslogMessage(line);
    const bytes = Buffer.byteLength(msg);
    if (bytes > COMMON_RECEIVER_LIMIT && !this.#warnedSize) {
      this.#warnedSize = true;
      this.options.warn?.('a decision record is longer than 8 KiB, the default message size limit of rsyslog, which cuts longer messages: make sure the receiver takes whole records (rsyslog: global(maxMessageSize="256k") before its inputs)', { sink: this.name, bytes });
    }
    return `${bytes} ${msg}`;
  }

  #write(socket: Socket, frames: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      socket.write(frames, (err) => {
        if (err) {
          socket.destroy();
          reject(err);
        } else resolve();
      });
    });
  }

  async close(): Promise<void> {
    this.#socket?.end();
    this.#socket = undefined;
  }
}
