// A schema-less reader for protobuf text format, enough for the cel-spec conformance files.
// Every message is a map from field name to the list of its values; strings stay as bytes.

export type TextValue = Uint8Array | number | bigint | boolean | string | TextMessage;
export type TextMessage = Map<string, TextValue[]>;

class Reader {
  pos = 0;
  constructor(readonly text: string) {}

  skip(): void {
    for (;;) {
      const c = this.text[this.pos];
      if (c === '#') while (this.pos < this.text.length && this.text[this.pos] !== '\n') this.pos++;
      else if (c !== undefined && /\s|,|;/.test(c)) this.pos++;
      else return;
    }
  }

  peek(): string | undefined {
    this.skip();
    return this.text[this.pos];
  }

  fieldName(): string {
    this.skip();
    if (this.text[this.pos] === '[') {
      const end = this.text.indexOf(']', this.pos);
      const name = this.text.slice(this.pos, end + 1);
      this.pos = end + 1;
      return name;
    }
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.text.slice(this.pos, this.pos + 200));
    if (!m) throw new Error(`field name expected at ${this.pos}: ${this.text.slice(this.pos, this.pos + 30)}`);
    this.pos += m[0].length;
    return m[0];
  }

  string(): Uint8Array {
    const bytes: number[] = [];
    while (this.peek() === '"' || this.peek() === "'") {
      const quote = this.text[this.pos++]!;
      for (;;) {
        // by code point: an emoji is two UTF-16 units, and each alone encodes as U+FFFD
        const c = String.fromCodePoint(this.text.codePointAt(this.pos)!);
        this.pos += c.length;
        if (c === quote) break;
        if (c !== '\\') {
          bytes.push(...Buffer.from(c, 'utf8'));
          continue;
        }
        const e = this.text[this.pos++]!;
        const simple: Record<string, number> = { n: 10, r: 13, t: 9, '\\': 92, "'": 39, '"': 34, a: 7, b: 8, f: 12, v: 11, '?': 63 };
        if (e in simple) bytes.push(simple[e]!);
        else if (/[0-7]/.test(e)) {
          let oct = e;
          while (oct.length < 3 && /[0-7]/.test(this.text[this.pos]!)) oct += this.text[this.pos++];
          bytes.push(parseInt(oct, 8));
        } else if (e === 'x') {
          let hex = '';
          while (hex.length < 2 && /[0-9a-fA-F]/.test(this.text[this.pos]!)) hex += this.text[this.pos++];
          bytes.push(parseInt(hex, 16));
        } else if (e === 'u' || e === 'U') {
          const n = e === 'u' ? 4 : 8;
          const cp = parseInt(this.text.slice(this.pos, this.pos + n), 16);
          this.pos += n;
          bytes.push(...Buffer.from(String.fromCodePoint(cp), 'utf8'));
        } else throw new Error(`unknown escape \\${e}`);
      }
    }
    return Uint8Array.from(bytes);
  }

  scalar(): TextValue {
    const c = this.peek();
    if (c === '"' || c === "'") return this.string();
    const m = /^[-+]?[A-Za-z0-9_.+-]+/.exec(this.text.slice(this.pos, this.pos + 100))!;
    this.pos += m[0].length;
    const word = m[0];
    if (word === 'true' || word === 'True') return true;
    if (word === 'false' || word === 'False') return false;
    if (/^-?(inf|infinity)$/i.test(word)) return word.startsWith('-') ? -Infinity : Infinity;
    if (/^-?nan$/i.test(word)) return NaN;
    if (/^-?\d+$/.test(word)) return BigInt(word);
    if (/^-?(\d+\.?\d*([eE][-+]?\d+)?|\.\d+([eE][-+]?\d+)?)f?$/.test(word)) return Number(word.replace(/f$/, ''));
    return word; // an enum name
  }

  message(close?: string): TextMessage {
    const out: TextMessage = new Map();
    for (;;) {
      const c = this.peek();
      if (c === undefined || c === close) {
        if (close) this.pos++;
        return out;
      }
      const name = this.fieldName();
      let next = this.peek();
      if (next === ':') {
        this.pos++;
        next = this.peek();
      }
      const push = (v: TextValue) => out.set(name, [...(out.get(name) ?? []), v]);
      if (next === '{' || next === '<') {
        this.pos++;
        push(this.message(next === '{' ? '}' : '>'));
      } else if (next === '[') {
        this.pos++;
        while (this.peek() !== ']') {
          if (this.peek() === '{') { this.pos++; push(this.message('}')); } else push(this.scalar());
        }
        this.pos++;
      } else push(this.scalar());
    }
  }
}

export function parseTextProto(text: string): TextMessage {
  return new Reader(text).message();
}

export const field = (m: TextMessage, name: string): TextValue | undefined => m.get(name)?.[0];
export const fields = (m: TextMessage, name: string): TextValue[] => m.get(name) ?? [];
export const text = (v: TextValue | undefined): string => (v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : String(v ?? ''));
