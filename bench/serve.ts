// Benchmarks start trustgate as it is deployed: the compiled bundle (the bench scripts build it
// first) with the rendered Deployment's V8 flags and malloc arenas, its audit lines discarded.
import { spawn, type ChildProcess } from 'node:child_process';
import { DEPLOYMENT_MALLOC_ARENA_MAX, DEPLOYMENT_NODE_OPTIONS } from '../src/kube/manifests.js';

const CLI = new URL('../dist/cli.js', import.meta.url).pathname;

/** `trustgate serve ARGS…`; nodeFlags replaces the Deployment's V8 flags. */
export function spawnDeployed(args: readonly string[], nodeFlags: readonly string[] = DEPLOYMENT_NODE_OPTIONS.split(' ')): ChildProcess {
  return spawn(process.execPath, [...nodeFlags, CLI, 'serve', ...args], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, MALLOC_ARENA_MAX: DEPLOYMENT_MALLOC_ARENA_MAX },
  });
}
