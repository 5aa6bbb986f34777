// A throwaway PostgreSQL cluster on a loopback port, from Debian's postgresql binaries.
// Missing binaries skip the test with a notice, except under CI=true, where that is a failure.
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { freePort, serviceOrSkip } from './services.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Postgres {
  url: string;
  stop(): void;
  start(): void;
  close(): void;
}

function binDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(root, versions[0], 'bin') : undefined;
}


/** Starts a cluster, or returns the reason it cannot (the caller skips, or fails under CI). */
export async function startPostgres(): Promise<Postgres | string> {
  const bin = binDir();
  if (!bin) return 'PostgreSQL is not installed (apt-get install postgresql)';
  const dir = mkdtempSync(join(tmpdir(), 'tg-pg-'));
  // PostgreSQL refuses to run as root: run it as the postgres user Debian's package creates
  const asRoot = process.getuid?.() === 0;
  const run = (cmd: string, args: string[]) => execFileSync(asRoot ? 'runuser' : cmd, asRoot ? ['-u', 'postgres', '--', cmd, ...args] : args, { stdio: 'pipe' });
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    chownSync(dir, uid, gid);
  }
  const port = await freePort();
  const data = join(dir, 'data');
  run(join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'trustgate', '--no-sync']);
  const start = () => run(join(bin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'log'), '-w', '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, 'start']);
  const stop = () => run(join(bin, 'pg_ctl'), ['-D', data, '-w', '-m', 'fast', 'stop']);
  start();
  return {
    url: `postgres://trustgate@127.0.0.1:${port}/postgres`,
    start,
    stop,
    close() {
      try {
        stop();
      } catch {
        // already stopped
      }
      execFileSync('rm', ['-rf', dir]);
    },
  };
}

/** For tap: the cluster, or undefined after skipping (failing under CI=true). */
export const postgresOrSkip = (t: Parameters<typeof serviceOrSkip>[0]) => serviceOrSkip(t, 'PostgreSQL', startPostgres);
