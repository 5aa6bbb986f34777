// Conversions cel-js lacks for timestamps and durations: string() and int().
import type { Environment } from '@marcbachmann/cel-js';

const TS = 'google.protobuf.Timestamp';
const DUR = 'google.protobuf.Duration';

export function registerTime(env: Environment): void {
  env
    .registerFunction(`string(${TS}): string`, (d: Date) => d.toISOString().replace(/\.000Z$/, 'Z'))
    .registerFunction(`int(${TS}): int`, (d: Date) => BigInt(Math.floor(d.getTime() / 1000)))
    .registerFunction(`string(${DUR}): string`, (d: object) => String(d))
    .registerFunction(`timestamp(${TS}): ${TS}`, (d: Date) => d)
    .registerFunction(`duration(${DUR}): ${DUR}`, (d: object) => d);
}
