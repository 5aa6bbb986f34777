// --audit-header values ('Name: value'), for the HTTP sinks of serve and scan.

/** Whether a flag value is a header line as --audit-header takes it. */
export const isHeaderLine = (line: string): boolean => /^[A-Za-z0-9-]+:\s?.+/.test(line);

export const HEADER_LINE_ERROR = "--audit-header must look like 'Name: value'";

/** --audit-header values as a header map. */
export function parseHeaderLines(lines: readonly string[]): Record<string, string> {
  return Object.fromEntries(lines.map((h) => [h.slice(0, h.indexOf(':')).trim(), h.slice(h.indexOf(':') + 1).trim()]));
}
