// The baseline: a bare fastify HTTPS server that parses the review and allows it, nothing more.
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';

const [certDir, port] = process.argv.slice(2);
const app = Fastify({
  https: { cert: readFileSync(`${certDir}/tls.crt`), key: readFileSync(`${certDir}/tls.key`), minVersion: 'TLSv1.2' },
  bodyLimit: 16 * 1024 * 1024,
});
app.post('/validate', async (req) => {
  const review = req.body as { request: { uid: string } };
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: review.request.uid, allowed: true } };
});
app.get('/readyz', async () => ({ status: 'ready' }));
await app.listen({ host: '127.0.0.1', port: Number(port) });
process.send?.('ready');
