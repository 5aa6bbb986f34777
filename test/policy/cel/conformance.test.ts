// The cel-spec simple conformance tests against trustgate's CEL environment. Prints the pass
// rate per file; tests needing protobuf message types are skipped and counted by reason.
// Targets (issue #2): >= 95 % of the core files, >= 77 % over all files run.
import { readdirSync, readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import t from 'tap';
import { createCelEnvironment, useRe2 } from '../../../src/policy/cel/index.js';
import { compileFast } from '../../../src/policy/cel/fast.js';
import type { Node } from '../../../src/policy/cel/ast.js';
import { field, fields, parseTextProto, text, type TextMessage, type TextValue } from '../../helpers/textproto.js';

const DIR = new URL('../../fixtures/cel-spec/', import.meta.url).pathname;
const CORE = new Set(['basic', 'comparisons', 'conversions', 'fields', 'fp_math', 'integer_math', 'lists', 'logic', 'macros', 'namespace', 'parse', 'plumbing', 'string', 'timestamps', 'type_deduction']);
const PROTO_FILES = new Set(['dynamic', 'enums', 'proto2', 'proto2_ext', 'proto3', 'wrappers']);
const PROTO = /TestAllTypes|NestedTestAllTypes|cel\.expr\.conformance|google\.api\.expr\.test|proto[23]|google\.protobuf\.(?!Timestamp|Duration)|\.Wrapper|enum_value/;

type Expected = { kind: 'value'; value: TextMessage } | { kind: 'error' } | { kind: 'skip'; reason: string };

class Unsupported extends Error {}

function fromValue(v: TextMessage): unknown {
  const [[kind, [raw]] = ['', []]] = [...v.entries()] as [string, TextValue[]][];
  switch (kind) {
    case 'int64_value': return { int: raw as bigint };
    case 'uint64_value': return { uint: raw as bigint };
    case 'double_value': return { double: Number(raw) };
    case 'string_value': return text(raw);
    case 'bytes_value': return { bytes: raw as Uint8Array };
    case 'bool_value': return raw === true || raw === 'true';
    case 'null_value': return null;
    case 'list_value': return fields(raw as TextMessage, 'values').map((x) => fromValue(x as TextMessage));
    case 'map_value': return { map: fields(raw as TextMessage, 'entries').map((e) => [fromValue(field(e as TextMessage, 'key') as TextMessage), fromValue(field(e as TextMessage, 'value') as TextMessage)]) };
    case 'type_value': return { type: text(raw) };
    case 'object_value': {
      const [[name, [msg]]] = [...(raw as TextMessage).entries()] as [string, TextValue[]][];
      const m = msg as TextMessage;
      const ms = Number(field(m, 'seconds') ?? 0n) * 1000 + Number(field(m, 'nanos') ?? 0n) / 1e6;
      if (name.includes('google.protobuf.Timestamp')) return { timestamp: ms };
      if (name.includes('google.protobuf.Duration')) return { duration: ms };
      throw new Unsupported(name);
    }
    default: throw new Unsupported(kind);
  }
}

function same(actual: unknown, expected: unknown): boolean {
  if (expected === null) return actual === null;
  if (typeof expected === 'string' || typeof expected === 'boolean') return actual === expected;
  if (Array.isArray(expected)) return Array.isArray(actual) && actual.length === expected.length && expected.every((e, i) => same(actual[i], e));
  const e = expected as Record<string, any>;
  if ('int' in e) return typeof actual === 'bigint' && actual === e.int;
  if ('uint' in e) return (actual as object)?.constructor?.name === 'UnsignedInt' && (actual as { valueOf(): bigint }).valueOf() === e.uint;
  if ('double' in e) return typeof actual === 'number' && (Number.isNaN(e.double) ? Number.isNaN(actual) : actual === e.double);
  if ('bytes' in e) return actual instanceof Uint8Array && Buffer.from(actual).equals(Buffer.from(e.bytes));
  if ('type' in e) return (actual as object)?.constructor?.name === 'Type' && String(actual) === `Type<${e.type}>`;
  if ('timestamp' in e) return actual instanceof Date && actual.getTime() === e.timestamp;
  if ('duration' in e) return (actual as object)?.constructor?.name === 'Duration' && Number((actual as { valueOf(): unknown }).valueOf()) === e.duration;
  if ('map' in e) {
    const entries: [unknown, unknown][] = actual instanceof Map ? [...actual] : actual && typeof actual === 'object' ? Object.entries(actual) : [];
    if (entries.length !== e.map.length) return false;
    return e.map.every(([k, v]: [unknown, unknown]) => {
      const key = typeof k === 'object' && k !== null ? String(Object.values(k)[0]) : String(k);
      const hit = entries.find(([ak]) => String(ak) === key);
      return hit !== undefined && same(hit[1], v);
    });
  }
  return false;
}

function expectation(test: TextMessage): Expected {
  const whole = JSON.stringify([...test.entries()], (_k, v) => (typeof v === 'bigint' ? String(v) : v instanceof Uint8Array ? Buffer.from(v).toString('latin1') : v instanceof Map ? [...v] : v));
  if (PROTO.test(whole) || PROTO.test(text(field(test, 'container')))) return { kind: 'skip', reason: 'needs protobuf message types' };
  if (field(test, 'check_only')) return { kind: 'skip', reason: 'check_only (type deduction only)' };
  if (test.has('unknown') || test.has('any_unknowns')) return { kind: 'skip', reason: 'unknown-set result' };
  if (test.has('eval_error') || test.has('any_eval_errors')) return { kind: 'error' };
  const typed = field(test, 'typed_result') as TextMessage | undefined;
  const value = (typed ? field(typed, 'result') : field(test, 'value')) as TextMessage | undefined;
  return { kind: 'value', value: value ?? new Map([['bool_value', [true]]]) };
}

function bindingsOf(test: TextMessage): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const b of fields(test, 'bindings') as TextMessage[]) {
    const exprValue = field(b, 'value') as TextMessage;
    const v = field(exprValue, 'value') as TextMessage;
    out[text(field(b, 'key'))] = toRuntime(fromValue(v));
  }
  return out;
}

function toRuntime(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(toRuntime);
  const e = v as Record<string, any>;
  if ('int' in e) return e.int;
  if ('double' in e) return e.double;
  if ('bytes' in e) return e.bytes;
  if ('timestamp' in e) return new Date(e.timestamp);
  if ('map' in e) return Object.fromEntries(e.map.map(([k, x]: [unknown, unknown]) => [String(toRuntime(k)), toRuntime(x)]));
  throw new Unsupported('binding');
}

const env = createCelEnvironment({ conformance: true });
const rows: { file: string; run: number; passed: number; skipped: number }[] = [];
const skipReasons = new Map<string, number>();
// The closures of the fast path (fast.ts) must return what cel-js returns whenever they return at all.
const fastPath = { compiled: 0, answered: 0, disagreements: [] as string[] };

for (const name of readdirSync(DIR).filter((f) => f.endsWith('.textproto')).sort()) {
  const file = parseTextProto(readFileSync(`${DIR}${name}`, 'utf8'));
  const row = { file: name.replace('.textproto', ''), run: 0, passed: 0, skipped: 0 };
  for (const section of fields(file, 'section') as TextMessage[]) {
    for (const test of fields(section, 'test') as TextMessage[]) {
      let expected: Expected;
      let bindings: Record<string, unknown>;
      try {
        expected = PROTO_FILES.has(row.file) ? { kind: 'skip', reason: 'needs protobuf message types' } : expectation(test);
        bindings = expected.kind === 'skip' ? {} : bindingsOf(test);
      } catch (err) {
        expected = { kind: 'skip', reason: err instanceof Unsupported ? 'needs protobuf message types' : 'unreadable test' };
        bindings = {};
      }
      if (expected.kind === 'skip') {
        row.skipped++;
        skipReasons.set(expected.reason, (skipReasons.get(expected.reason) ?? 0) + 1);
        continue;
      }
      row.run++;
      let ok = false;
      let got: unknown;
      let fast: ReturnType<typeof compileFast>;
      try {
        const parsed = env.parse(text(field(test, 'expr')));
        useRe2(parsed.ast);
        // policies only ever run expressions that type-checked at load
        if (parsed.check().valid) fast = compileFast(parsed.ast as Node);
        got = parsed(bindings);
        ok = expected.kind === 'value' && same(got, fromValue(expected.value));
      } catch (err) {
        got = `error: ${(err as Error).message.split('\n')[0]}`;
        ok = expected.kind === 'error';
      }
      if (fast) {
        fastPath.compiled++;
        let answer: { value: unknown } | undefined;
        try {
          answer = { value: fast(bindings) };
        } catch {
          // missed: cel-js answers
        }
        if (answer) {
          fastPath.answered++;
          if (!isDeepStrictEqual(answer.value, got)) fastPath.disagreements.push(`${row.file}/${text(field(test, 'name'))}: ${text(field(test, 'expr'))}`);
        }
      }
      if (ok) row.passed++;
      else if (process.env.CEL_CONFORMANCE_FAILURES === row.file || process.env.CEL_CONFORMANCE_FAILURES === 'all') {
        console.error(`FAIL ${row.file}/${text(field(test, 'name'))}: ${text(field(test, 'expr'))} => ${typeof got === 'bigint' ? `${got}n` : String(got)}`);
      }
    }
  }
  rows.push(row);
}

const pct = (p: number, n: number) => (n ? `${((p / n) * 100).toFixed(1)} %` : '—');
const sum = (rs: typeof rows) => rs.reduce((a, r) => ({ run: a.run + r.run, passed: a.passed + r.passed, skipped: a.skipped + r.skipped }), { run: 0, passed: 0, skipped: 0 });
const core = sum(rows.filter((r) => CORE.has(r.file)));
const all = sum(rows);
const lines = ['cel-spec simple conformance (google/cel-spec 508bd98), trustgate CEL environment', `${'file'.padEnd(16)} ${'passed/run'.padStart(11)} ${'rate'.padStart(8)}  skipped`];
for (const r of rows) lines.push(`${r.file.padEnd(16)} ${`${r.passed}/${r.run}`.padStart(11)} ${pct(r.passed, r.run).padStart(8)}  ${r.skipped}`);
lines.push(`${'core files'.padEnd(16)} ${`${core.passed}/${core.run}`.padStart(11)} ${pct(core.passed, core.run).padStart(8)}  ${core.skipped}`);
lines.push(`${'all files'.padEnd(16)} ${`${all.passed}/${all.run}`.padStart(11)} ${pct(all.passed, all.run).padStart(8)}  ${all.skipped}`);
lines.push(`skipped by reason: ${[...skipReasons].map(([r, n]) => `${r}: ${n}`).join('; ')}`);
t.comment(lines.join('\n'));
if (process.env.CEL_CONFORMANCE_REPORT) console.error(lines.join('\n'));

// The issue's targets: 95 % of the core files (reached with the cel-js patches in patches/),
// 77 % over all files.
t.ok(core.passed / core.run >= 0.95, `core pass rate ${pct(core.passed, core.run)} (target 95 %)`);
t.ok(all.passed / all.run >= 0.77, `overall pass rate ${pct(all.passed, all.run)} (target 77 %)`);

t.test('the fast path agrees with cel-js on every conformance test it answers', async (t) => {
  t.comment(`fast path: ${fastPath.compiled} expressions compiled to closures, ${fastPath.answered} answered by them`);
  t.ok(fastPath.answered > 300, 'the comparison covers a good share of the suite');
  t.same(fastPath.disagreements, []);
});
