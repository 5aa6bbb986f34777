// Shared by the helpers that start real services (PostgreSQL, rsyslog) for tests.
import { createServer } from 'node:net';

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Tap = { skip(...a: any[]): unknown; fail(...a: any[]): unknown; comment(...a: any[]): unknown };

/**
 * The started service, or undefined after skipping with a visible notice. Under CI=true a
 * missing service is a failure: CI must never pass by skipping what it should have run.
 */
export async function serviceOrSkip<S>(t: Tap, what: string, start: () => Promise<S | string>): Promise<S | undefined> {
  const s = await start().catch((err: Error) => `${what} did not start: ${err.message}`);
  if (typeof s !== 'string') return s;
  if (process.env.CI === 'true') t.fail(`${s}: CI must run this test`);
  else {
    t.comment(`NOTICE: skipping ${what} tests: ${s}`);
    t.skip(s);
  }
  return undefined;
}
