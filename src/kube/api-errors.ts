// The API server's answers as client-node throws them: the HTTP status, and the Status message.
import { ApiException } from '@kubernetes/client-node';

/** The HTTP status of a failed API call (client-node's ApiException, or an error carrying one). */
export const statusOf = (err: unknown): number | undefined => (err as { code?: number; statusCode?: number }).code ?? (err as { statusCode?: number }).statusCode;

/** "HTTP 403 (the Status message)", or the error's own message for what never reached the API server. */
export function describeApiError(err: unknown): string {
  if (!(err instanceof ApiException)) return (err as Error).message;
  let message: string | undefined;
  try {
    message = (JSON.parse(String(err.body)) as { message?: string }).message;
  } catch {
    // not a Status: the code says enough
  }
  return `HTTP ${err.code}${message ? ` (${message})` : ''}`;
}
