// Benchmark baseline only: the same fastify app and policies as trustgate, but with a recorder
// that records nothing, to measure what auditing costs. trustgate itself has no such mode.
import { readFile } from 'node:fs/promises';
import { pino } from 'pino';
import { NullDecisionRecorder } from '../src/audit/index.js';
import { loadPolicySet } from '../src/policy/index.js';
import { buildApp, createMetrics } from '../src/server/index.js';

const [policies, cert, key, port] = process.argv.slice(2);
const set = (await loadPolicySet([policies!])).set!;
const app = buildApp(
  {
    admission: { policies: () => set, recorder: new NullDecisionRecorder(), replica: 'baseline', deadlineMs: 8000 },
    metrics: createMetrics({ defaultMetrics: false }),
    logger: pino({ level: 'warn' }),
    readiness: [],
  },
  { https: { cert: await readFile(cert!), key: await readFile(key!), minVersion: 'TLSv1.2' } as never },
);
await app.listen({ host: '127.0.0.1', port: Number(port) });
