// An open-loop load at a fixed rate: requests leave on schedule whether or not earlier ones
// have been answered (a slow server is not given a pause), over keep-alive TLS connections,
// each latency taken with the high-resolution clock. autocannon's fixed-rate mode sends in
// bursts and reports whole milliseconds: it put the bare echo's p99 at 9-18 ms where this
// client measures about 2 ms, so latency percentiles come from here, throughput from autocannon.
import { Agent, request } from 'node:https';
import { setFlagsFromString } from 'node:v8';

// The load generator is a Node process too, and its own pauses land inside its timings. After a
// heavy earlier phase (bench/images.ts verifies and admits in process first) V8 pretenured its
// request objects, and the collections that followed added 3-5 ms to the measured p99; it runs
// with pretenuring off, as `trustgate serve` does.
setFlagsFromString('--no-allocation-site-pretenuring');

export interface LatencySummary {
  requests: number;
  errors: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

export async function fixedRate(url: string, options: { ca: Buffer; body: string; rate: number; seconds: number; connections: number }): Promise<LatencySummary> {
  const target = new URL(url);
  const agent = new Agent({ keepAlive: true, maxSockets: options.connections, ca: options.ca });
  const body = Buffer.from(options.body);
  const latencies: number[] = [];
  let errors = 0;
  let inflight = 0;
  const post = (done: (ok: boolean) => void) => {
    const req = request({
      host: target.hostname, port: target.port, path: target.pathname, method: 'POST', agent,
      headers: { 'content-type': 'application/json', 'content-length': body.length },
    }, (res) => {
      res.resume();
      res.on('end', () => done(res.statusCode === 200));
    });
    req.on('error', () => done(false));
    req.end(body);
  };
  const send = () => {
    const started = process.hrtime.bigint();
    inflight++;
    post((ok) => {
      inflight--;
      if (ok) latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
      else errors++;
    });
  };
  // every connection is open before the clock starts: the budget is keep-alive latency, and
  // ten TLS handshakes at the start of a round queued its first 10-40 requests behind them
  // (up to 30-60 ms, the bare echo and trustgate alike)
  await Promise.all(Array.from({ length: options.connections }, () => new Promise((resolve) => post(resolve))));
  const total = options.rate * options.seconds;
  const interval = 1000 / options.rate;
  const start = performance.now();
  let sent = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor((performance.now() - start) / interval) + 1);
      while (sent < due) (send(), sent++);
      if (sent < total) setTimeout(tick, 1);
      else resolve();
    };
    tick();
  });
  while (inflight > 0) await new Promise((r) => setTimeout(r, 10));
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? Number.NaN;
  return { requests: latencies.length, errors, p50: at(0.5), p90: at(0.9), p99: at(0.99), p999: at(0.999), max: latencies.at(-1) ?? Number.NaN };
}

/** The round with the median p99: one bad or lucky round on a shared machine decides nothing. */
export function medianRound(rounds: readonly LatencySummary[]): LatencySummary {
  return [...rounds].sort((a, b) => a.p99 - b.p99)[Math.floor(rounds.length / 2)]!;
}
