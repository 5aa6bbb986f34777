// The HTTP audit sink of bench/audit-outage.ts, in a process of its own: unpacking and parsing
// each 1.2 MB batch stalled the load generator's event loop when it ran there, and every
// request in flight then counted the stall as the server's latency.
// IPC: receives { up: boolean } and { count: true }; sends { listening: url } and { received: n }.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

const received = new Set<string>();
let up = true;
const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    if (!up) return res.writeHead(503).end();
    for (const r of JSON.parse(gunzipSync(Buffer.concat(chunks)).toString()) as { decisionId: string }[]) received.add(r.decisionId);
    res.writeHead(200).end();
  });
});
server.listen(0, '127.0.0.1', () => process.send!({ listening: `http://127.0.0.1:${(server.address() as AddressInfo).port}/logs` }));
process.on('message', (m: { up?: boolean; count?: true }) => {
  if (m.up !== undefined) up = m.up;
  if (m.count) process.send!({ received: received.size });
});
process.on('disconnect', () => process.exit(0));
