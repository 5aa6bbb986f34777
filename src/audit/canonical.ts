// Canonical JSON (sorted keys, no whitespace): the same value always hashes the same.
// On the hot path (object digests), so it appends to one string instead of building arrays.

function write(value: unknown, out: { s: string }): void {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number') out.s += Number.isFinite(value) ? String(value) : 'null';
    else if (typeof value === 'string') out.s += JSON.stringify(value);
    else if (typeof value === 'boolean') out.s += value ? 'true' : 'false';
    else out.s += 'null';
    return;
  }
  if (Array.isArray(value)) {
    out.s += '[';
    for (let i = 0; i < value.length; i++) {
      if (i) out.s += ',';
      write(value[i] === undefined ? null : value[i], out);
    }
    out.s += ']';
    return;
  }
  const keys = Object.keys(value).sort();
  out.s += '{';
  let first = true;
  for (const k of keys) {
    const v = (value as Record<string, unknown>)[k];
    if (v === undefined) continue;
    if (!first) out.s += ',';
    first = false;
    out.s += JSON.stringify(k);
    out.s += ':';
    write(v, out);
  }
  out.s += '}';
}

export function canonicalJson(value: unknown): string {
  const out = { s: '' };
  write(value, out);
  return out.s;
}
