// The API server says on every call how long it will wait for the answer: `?timeout=10s`, the
// webhook's timeoutSeconds (1 to 30 s) as a Go duration. A webhook configured shorter than
// trustgate's internal deadline would otherwise time out at the API server, whose own
// failurePolicy then decides (an Ignore there admits the object unchecked) while the record
// says something else. So a request is decided within the internal deadline or 80 % of the
// caller's timeout, whichever is shorter: the rest is the answer's way back.
export const CALLER_TIMEOUT_SHARE = 0.8;

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/y;

/** A Go duration ("10s", "1m30s", "1.5s", "500ms") in milliseconds; undefined when it is not one, or not positive. */
export function parseGoDuration(text: string): number | undefined {
  if (!text || text.length > 64) return undefined;
  let ms = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < text.length) {
    const m = PART.exec(text);
    if (!m) return undefined;
    ms += Number(m[1]) * UNIT_MS[m[2]!]!;
  }
  return ms > 0 && Number.isFinite(ms) ? ms : undefined;
}

/** The deadline for one request: the internal one, or less when the caller's `timeout` is shorter. */
export function requestDeadlineMs(query: unknown, internalMs: number): number {
  const timeout = (query as { timeout?: unknown } | undefined)?.timeout;
  if (typeof timeout !== 'string') return internalMs;
  const callerMs = parseGoDuration(timeout);
  return callerMs === undefined ? internalMs : Math.min(internalMs, Math.floor(callerMs * CALLER_TIMEOUT_SHARE));
}
