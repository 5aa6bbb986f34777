// A fast path for the common shapes of policy expressions: the checked cel-js AST compiled
// once into JavaScript closures, so an admission does not walk the tree and dispatch overloads
// per node. cel-js stays the reference: every closure checks the kinds of value it assumes and
// throws FAST_PATH_MISS otherwise (and any error at all ends the fast attempt), after which the
// caller evaluates the expression with cel-js. A fast result is therefore only returned where
// it is what cel-js returns; errors, unusual types and CEL's error absorption are cel-js's.
// Expressions using anything not handled here (map literals, timestamps, URLs …) are not compiled.
import { asciiCase } from '@marcbachmann/cel-js';
import { isIdentifier, type Node } from './ast.js';
import { regexMatches } from './regex.js';
import { RE2_MATCHES } from './library/regex.js';
import { parseQuantity, Quantity } from './library/quantity.js';
import { chargeSize, meterIteration } from './meter.js';

export type Activation = Record<string, unknown>;
export type FastExpression = (activation: Activation) => unknown;

/** Thrown when a value is not of a kind the fast path handles; the caller falls back to cel-js. */
const FAST_PATH_MISS: unique symbol = Symbol('fast path miss');

type Frame = unknown[];
type Code = (act: Activation, frame: Frame) => unknown;

const NONE: unique symbol = Symbol('optional.none');
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const hasOwn = Object.hasOwn;
const objectProto = Object.prototype;

const miss = (): never => {
  throw FAST_PATH_MISS;
};

/** A JSON object as toCel makes it: CEL's map<string, dyn>. */
function isPlainMap(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object') return false;
  const proto = Object.getPrototypeOf(v);
  return proto === objectProto || proto === null;
}

const bool = (v: unknown): boolean => (typeof v === 'boolean' ? v : miss());
const str = (v: unknown): string => (typeof v === 'string' ? v : miss());
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : miss());
const int64 = (v: bigint): bigint => (v < INT64_MIN || v > INT64_MAX ? miss() : v);

/** map field `o.k`: absent keys are cel-js's error to report */
function field(o: unknown, key: string): unknown {
  if (!isPlainMap(o) || !hasOwn(o, key)) return miss();
  const v = o[key];
  return v === undefined ? miss() : v;
}

/** `o.?k`: none when the map has no such key */
function optionalField(o: unknown, key: string): unknown {
  if (o === NONE) return NONE;
  if (!isPlainMap(o)) return miss();
  if (!hasOwn(o, key)) return NONE;
  const v = o[key];
  return v === undefined ? NONE : v;
}

/** `==` on scalars of one kind; anything else (lists, maps, int against double) is cel-js's */
function equal(a: unknown, b: unknown): boolean {
  const t = typeof a;
  if (t !== typeof b || (t !== 'string' && t !== 'boolean' && t !== 'bigint' && t !== 'number')) {
    return a === null && b === null ? true : miss();
  }
  return a === b;
}

/** two strings, ints or doubles, which JavaScript orders as cel-js does */
function ordered(a: unknown, b: unknown): void {
  const t = typeof a;
  if (t !== typeof b || (t !== 'string' && t !== 'bigint' && t !== 'number')) miss();
}

const OPERATORS: Record<string, (a: unknown, b: unknown) => unknown> = {
  '==': equal,
  '!=': (a, b) => !equal(a, b),
  'in': (a, b) => contains(b, a),
  '+': add,
  '-': subtract,
};

const RELATIONS: Record<string, (a: number, b: number) => boolean> = {
  '<': (a, b) => a < b,
  '<=': (a, b) => a <= b,
  '>': (a, b) => a > b,
  '>=': (a, b) => a >= b,
};

// CEL ints are BigInts, each a heap object: sizes and indexes are mostly small, so those are made once
const SMALL_INTS = Array.from({ length: 1025 }, (_, i) => BigInt(i - 1));
const int = (n: number): bigint => (n >= -1 && n < 1024 ? SMALL_INTS[n + 1]! : BigInt(n));

/** CEL size() counts code points; strings with surrogate pairs are left to cel-js */
function size(v: unknown): bigint {
  if (typeof v === 'string') {
    for (let i = 0; i < v.length; i++) {
      const c = v.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdfff) return miss();
    }
    return int(v.length);
  }
  if (Array.isArray(v)) return int(v.length);
  if (isPlainMap(v)) return int(Object.keys(v).length);
  return miss();
}

// What builds a string or list, or compares a list's items, charges its size as cel-js's
// patched functions do (meter.ts)
function add(a: unknown, b: unknown): unknown {
  if (typeof a === 'string' && typeof b === 'string') {
    chargeSize(a.length + b.length);
    return a + b;
  }
  if (typeof a === 'bigint' && typeof b === 'bigint') return int64(a + b);
  if (typeof a === 'number' && typeof b === 'number') return a + b;
  if (Array.isArray(a) && Array.isArray(b)) {
    chargeSize(a.length + b.length);
    return [...a, ...b];
  }
  return miss();
}

function subtract(a: unknown, b: unknown): unknown {
  if (typeof a === 'bigint' && typeof b === 'bigint') return int64(a - b);
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return miss();
}

function contains(container: unknown, item: unknown): boolean {
  if (Array.isArray(container)) {
    chargeSize(container.length); // the comparisons, as cel-js charges them
    for (let i = 0; i < container.length; i++) if (equal(item, container[i])) return true;
    return false;
  }
  if (isPlainMap(container) && typeof item === 'string') return hasOwn(container, item) && container[item] !== undefined;
  return miss();
}

function join(items: unknown, separator: string): string {
  const l = list(items);
  let size = l.length > 1 ? separator.length * (l.length - 1) : 0;
  for (let i = 0; i < l.length; i++) size += str(l[i]).length;
  chargeSize(size);
  return l.join(separator);
}

function split(s: string, separator: string): string[] {
  chargeSize(s.length);
  return s.split(separator);
}

/** ASCII letters only, with cel-js's own mapping (toLowerCase would fold the Kelvin sign into 'k') */
function caseMapped(s: string, upper: boolean): string {
  chargeSize(s.length);
  return asciiCase(s, upper);
}

interface Method {
  /** argument counts handled (cel-js type-checked the call against its overloads) */
  arity: readonly number[];
  /** arguments beyond the call's arity are undefined */
  call(receiver: unknown, a: unknown, b: unknown): unknown;
}

const METHODS: Record<string, Method> = {
  size: { arity: [0], call: (r) => size(r) },
  startsWith: { arity: [1], call: (r, a) => str(r).startsWith(str(a)) },
  endsWith: { arity: [1], call: (r, a) => str(r).endsWith(str(a)) },
  contains: { arity: [1], call: (r, a) => str(r).includes(str(a)) },
  join: { arity: [0, 1], call: (r, a) => join(r, a === undefined ? '' : str(a)) },
  [RE2_MATCHES]: { arity: [1], call: (r, a) => regexMatches(str(r), str(a)) },
  // cel-js's string functions index UTF-16 code units, as these do
  indexOf: { arity: [1], call: (r, a) => int(str(r).indexOf(str(a))) },
  lastIndexOf: { arity: [1], call: (r, a) => int(str(r).lastIndexOf(str(a))) },
  substring: { arity: [1, 2], call: (r, a, b) => substring(str(r), a, b) },
  split: { arity: [1], call: (r, a) => split(str(r), str(a)) },
  lowerAscii: { arity: [0], call: (r) => caseMapped(str(r), false) },
  upperAscii: { arity: [0], call: (r) => caseMapped(str(r), true) },
  // Kubernetes quantities, compared by the library's own Quantity (library/quantity.ts)
  isLessThan: { arity: [1], call: (r, a) => quantity(r).compare(quantity(a)) < 0 },
  isGreaterThan: { arity: [1], call: (r, a) => quantity(r).compare(quantity(a)) > 0 },
  isEqualTo: { arity: [1], call: (r, a) => quantity(r).compare(quantity(a)) === 0 },
  compareTo: { arity: [1], call: (r, a) => int(quantity(r).compare(quantity(a))) },
};

const quantity = (v: unknown): Quantity => (v instanceof Quantity ? v : miss());

/** out-of-range indexes are cel-js's error to report; no end means the string's end */
function substring(s: string, start: unknown, end: unknown = BigInt(s.length)): string {
  if (typeof start !== 'bigint' || typeof end !== 'bigint' || start < 0n || end < start || end > BigInt(s.length)) return miss();
  return s.substring(Number(start), Number(end));
}

const FUNCTIONS: Record<string, Method> = {
  size: { arity: [1], call: (_, a) => size(a) },
  [RE2_MATCHES]: { arity: [2], call: (_, a, b) => regexMatches(str(a), str(b)) },
  // a string that is no quantity is cel-js's error to report
  quantity: { arity: [1], call: (_, a) => parseQuantity(str(a)) ?? miss() },
  isQuantity: { arity: [1], call: (_, a) => parseQuantity(str(a)) !== undefined },
};

const NO_RECEIVER: Code = () => undefined;

class Unsupported extends Error {}
const unsupported = (): never => {
  throw new Unsupported();
};

class Compiler {
  /** comprehension variables in scope, innermost last: [name, frame slot] */
  private readonly scope: [string, number][] = [];
  slots = 0;

  compile(n: Node): Code {
    const a = n.args;
    switch (n.op) {
      case 'value': {
        if (a !== null && typeof a === 'object') return unsupported(); // bytes
        return () => a;
      }
      case 'id': {
        const slot = this.lookup(a as string);
        if (slot !== undefined) return (_act, f) => f[slot];
        return this.activation(a as string);
      }
      case 'rootId': return this.activation(a as string);
      case '.': {
        const receiver = this.compile(a[0]);
        const key = a[1] as string;
        return (act, f) => field(receiver(act, f), key);
      }
      case '!_': {
        const operand = this.compile(Array.isArray(a) ? a[0] : a);
        return (act, f) => !bool(operand(act, f));
      }
      case '&&': {
        const [l, r] = this.pair(a);
        return (act, f) => bool(l(act, f)) && bool(r(act, f));
      }
      case '||': {
        const [l, r] = this.pair(a);
        return (act, f) => bool(l(act, f)) || bool(r(act, f));
      }
      case '?:': {
        if (!Array.isArray(a) || a.length !== 3) return unsupported();
        const [c, t, e] = (a as Node[]).map((x) => this.compile(x)) as [Code, Code, Code];
        return (act, f) => (bool(c(act, f)) ? t(act, f) : e(act, f));
      }
      case '<': case '<=': case '>': case '>=': {
        const [l, r] = this.pair(a);
        const relation = RELATIONS[n.op]!;
        return (act, f) => {
          const x = l(act, f), y = r(act, f);
          ordered(x, y);
          return relation(x as number, y as number);
        };
      }
      case '==': case '!=': case 'in': case '+': case '-': {
        const [l, r] = this.pair(a);
        const operator = OPERATORS[n.op]!;
        return (act, f) => operator(l(act, f), r(act, f));
      }
      case 'list': {
        const nodes = a as Node[];
        // a list of literals is made once: CEL values are immutable, and nothing here changes a list
        if (nodes.every((x) => x.op === 'value' && (x.args === null || typeof x.args !== 'object'))) {
          const constant = Object.freeze(nodes.map((x) => x.args as unknown));
          return () => constant;
        }
        const items = nodes.map((x) => this.compile(x));
        return (act, f) => items.map((item) => item(act, f));
      }
      case '[]': {
        const [l, r] = this.pair(a);
        return (act, f) => {
          const c = l(act, f), k = r(act, f);
          if (Array.isArray(c) && typeof k === 'bigint' && k >= 0n && k < BigInt(c.length)) return c[Number(k)];
          if (typeof k === 'string') return field(c, k);
          return miss();
        };
      }
      case 'call': {
        const [name, args] = a as [string, Node[]];
        if (name === 'has') return this.has(args);
        return this.call(hasOwn(FUNCTIONS, name) ? FUNCTIONS[name]! : unsupported(), undefined, args);
      }
      case 'rcall': return this.receiverCall(n);
      default: return unsupported();
    }
  }

  private pair(a: unknown): [Code, Code] {
    if (!Array.isArray(a) || a.length !== 2) return unsupported();
    return [this.compile(a[0] as Node), this.compile(a[1] as Node)];
  }

  private lookup(name: string): number | undefined {
    for (let i = this.scope.length - 1; i >= 0; i--) if (this.scope[i]![0] === name) return this.scope[i]![1];
    return undefined;
  }

  private activation(name: string): Code {
    return (act) => {
      const v = hasOwn(act, name) ? act[name] : undefined;
      return v === undefined ? miss() : v;
    };
  }

  /** has(m.k) on a map */
  private has(args: Node[]): Code {
    const [target] = args;
    if (args.length !== 1 || target!.op !== '.') return unsupported();
    const receiver = this.compile(target!.args[0]);
    const key = target!.args[1] as string;
    return (act, f) => {
      const o = receiver(act, f);
      if (!isPlainMap(o)) return miss();
      return hasOwn(o, key) && o[key] !== undefined;
    };
  }

  /** an expression of optional type, as value-or-NONE: `.?` chains */
  private optional(n: Node): Code {
    if (n.op !== '.?') return unsupported();
    const [receiverNode, key] = n.args as [Node, string];
    const receiver = receiverNode.op === '.?' ? this.optional(receiverNode) : this.compile(receiverNode);
    return (act, f) => optionalField(receiver(act, f), key);
  }

  private receiverCall(n: Node): Code {
    const [name, receiverNode, args] = n.args as [string, Node, Node[]];
    switch (name) {
      case 'orValue': {
        if (args.length !== 1) return unsupported();
        const opt = this.optional(receiverNode);
        const fallback = this.compile(args[0]!);
        return (act, f) => {
          const v = opt(act, f);
          return v === NONE ? fallback(act, f) : v;
        };
      }
      case 'hasValue': {
        if (args.length !== 0) return unsupported();
        const opt = this.optional(receiverNode);
        return (act, f) => opt(act, f) !== NONE;
      }
      case 'all': case 'exists': case 'exists_one': case 'filter': case 'map':
        return this.comprehension(name, receiverNode, args);
      case 'bind':
        if (isIdentifier(receiverNode, 'cel') && receiverNode.op === 'id' && this.lookup('cel') === undefined) return this.bind(args);
    }
    return this.call(hasOwn(METHODS, name) ? METHODS[name]! : unsupported(), receiverNode, args);
  }

  /** a function or method call: receiver first, then the arguments, in source order */
  private call(fn: Method, receiverNode: Node | undefined, args: Node[]): Code {
    if (!fn.arity.includes(args.length)) return unsupported();
    const receiver = receiverNode ? this.compile(receiverNode) : NO_RECEIVER;
    const [a, b] = args.map((x) => this.compile(x));
    const { call } = fn;
    if (b) return (act, f) => call(receiver(act, f), a!(act, f), b(act, f));
    if (a) return (act, f) => call(receiver(act, f), a(act, f), undefined);
    return (act, f) => call(receiver(act, f), undefined, undefined);
  }

  /** cel.bind(name, init, body): init evaluated once, named in body */
  private bind(args: Node[]): Code {
    if (args.length !== 3 || args[0]!.op !== 'id') return unsupported();
    const init = this.compile(args[1]!);
    const slot = this.slots++;
    this.scope.push([args[0]!.args as string, slot]);
    const body = this.compile(args[2]!);
    this.scope.pop();
    return (act, f) => {
      f[slot] = init(act, f);
      return body(act, f);
    };
  }

  /**
   * The one-variable macros over a list; maps and the two-variable forms are cel-js's. Each
   * loop charges the meter as cel-js's do (meterIteration, meter.ts).
   */
  private comprehension(name: string, receiverNode: Node, args: Node[]): Code {
    if (args.length !== 2 || !isIdentifier(args[0]!) || args[0]!.op !== 'id') return unsupported();
    const receiver = this.compile(receiverNode);
    const slot = this.slots++;
    this.scope.push([args[0]!.args as string, slot]);
    const body = this.compile(args[1]!);
    this.scope.pop();
    switch (name) {
      case 'all': return (act, f) => {
        const l = meterIteration(list(receiver(act, f)));
        for (let i = 0; i < l.length; i++) { f[slot] = l[i]; if (!bool(body(act, f))) return false; }
        return true;
      };
      case 'exists': return (act, f) => {
        const l = meterIteration(list(receiver(act, f)));
        for (let i = 0; i < l.length; i++) { f[slot] = l[i]; if (bool(body(act, f))) return true; }
        return false;
      };
      case 'exists_one': return (act, f) => {
        const l = meterIteration(list(receiver(act, f)));
        let n = 0;
        for (let i = 0; i < l.length; i++) { f[slot] = l[i]; if (bool(body(act, f))) n++; }
        return n === 1;
      };
      case 'filter': return (act, f) => {
        const l = meterIteration(list(receiver(act, f)));
        const out: unknown[] = [];
        for (let i = 0; i < l.length; i++) { const v = l[i]; f[slot] = v; if (bool(body(act, f))) out.push(v); }
        return out;
      };
      default: return (act, f) => {
        const l = meterIteration(list(receiver(act, f)));
        const out: unknown[] = [];
        for (let i = 0; i < l.length; i++) { f[slot] = l[i]; out.push(body(act, f)); }
        return out;
      };
    }
  }
}

/** The expression as closures, or undefined when it uses anything the fast path leaves to cel-js. */
export function compileFast(ast: Node): FastExpression | undefined {
  const compiler = new Compiler();
  let code: Code;
  try {
    code = compiler.compile(ast);
  } catch {
    // Unsupported, or an AST shape this compiler did not foresee: cel-js alone evaluates it,
    // and the policy loads as it would without the fast path
    return undefined;
  }
  const slots = compiler.slots;
  const run = (act: Activation): unknown => {
    const v = code(act, slots === 0 ? EMPTY_FRAME : new Array(slots));
    // an optional or a value of no CEL kind never leaves the fast path
    return v === NONE || v === undefined ? miss() : v;
  };
  return run;
}

const EMPTY_FRAME: Frame = [];
