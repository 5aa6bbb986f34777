// FileHandle fsyncs (datasync) of the whole process, replaced while a test runs: counted,
// failed on demand, or held until the test lets each one finish.
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

type Datasync = (this: unknown) => Promise<void>;
interface Teardown { teardown(fn: () => void): void }

async function patchDatasync(t: Teardown, wrap: (original: Datasync) => Datasync): Promise<void> {
  const scratch = await mkdtemp(join(tmpdir(), 'tg-fh-'));
  const handle = await open(join(scratch, 'x'), 'w');
  const proto = Object.getPrototypeOf(handle) as { datasync: Datasync };
  await handle.close();
  await rm(scratch, { recursive: true });
  const original = proto.datasync;
  proto.datasync = wrap(original);
  t.teardown(() => { proto.datasync = original; });
}

/** Counts every fsync; `fail` may return an error for one to reject with instead. */
export async function watchFsyncs(t: Teardown, fail?: () => Error | undefined): Promise<{ count: number }> {
  const calls = { count: 0 };
  await patchDatasync(t, (original) => function (this: unknown) {
    calls.count++;
    const err = fail?.();
    return err ? Promise.reject(err) : original.call(this);
  });
  return calls;
}

/** succeed() runs the real fsync and resolves once it has finished */
export interface HeldFsync { succeed(): Promise<void>; fail(err: Error): void }

/** Every fsync waits, in the returned list, until the test lets it succeed (really) or fail. */
export async function holdFsyncs(t: Teardown): Promise<HeldFsync[]> {
  const held: HeldFsync[] = [];
  await patchDatasync(t, (original) => function (this: unknown) {
    return new Promise<void>((resolve, reject) => {
      held.push({ succeed: () => original.call(this).then(resolve, reject), fail: reject });
    });
  });
  return held;
}
