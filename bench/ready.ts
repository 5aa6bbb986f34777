// Every benchmark waits the same way for the server it started: /readyz answering 200.
import type { ChildProcess } from 'node:child_process';
import { request } from 'node:https';

/** Resolves once /readyz answers 200; fails if the process exits first or never gets ready. */
export async function waitReady(child: ChildProcess, url: string, ca: Buffer): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const req = request(`${url}/readyz`, { ca, agent: false }, (res) => { res.resume(); resolve(res.statusCode === 200); });
      req.on('error', () => resolve(false));
      req.end();
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`server at ${url} did not become ready`);
}
