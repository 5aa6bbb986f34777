// Kubernetes IP and CIDR libraries: addresses as BigInt, canonical forms as Kubernetes requires.
import { isIP as nodeIsIP } from 'node:net';
import type { Environment } from '@marcbachmann/cel-js';
import { celError } from './fail.js';

export class IPAddress {
  constructor(readonly family: 4 | 6, readonly value: bigint) {}
  toString(): string { return formatIP(this.family, this.value); }
}
class IPNamespace {}

export class CIDR {
  constructor(readonly ip: IPAddress, readonly prefix: number) {}
  toString(): string { return `${this.ip}/${this.prefix}`; }
}

function parseIP(s: string): IPAddress | undefined {
  const family = nodeIsIP(s);
  if (family === 4) {
    const parts = s.split('.');
    // Kubernetes rejects leading zeros, which some parsers read as octal
    if (parts.some((p) => p.length > 1 && p.startsWith('0'))) return undefined;
    return new IPAddress(4, parts.reduce((acc, p) => (acc << 8n) | BigInt(p), 0n));
  }
  if (family === 6) {
    if (s.includes('%')) return undefined; // zones are not addresses
    if (/\d+\.\d+\.\d+\.\d+$/.test(s)) {
      if (/^::ffff:/i.test(s)) return undefined; // IPv4-mapped addresses are refused, as in Kubernetes
    }
    const value = expandIPv6(s);
    // IPv4-mapped addresses in hex too (::ffff:c0a8:1): Kubernetes refuses every form of them
    if (value >> 32n === 0xffffn) return undefined;
    return new IPAddress(6, value);
  }
  return undefined;
}

function expandIPv6(s: string): bigint {
  let text = s;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const n = v4[1]!.split('.').map(Number);
    text = text.slice(0, -v4[1]!.length) + `${((n[0]! << 8) | n[1]!).toString(16)}:${((n[2]! << 8) | n[3]!).toString(16)}`;
  }
  const [head, tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

function formatIP(family: 4 | 6, v: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 255n)).join('.');
  const groups = Array.from({ length: 8 }, (_, i) => Number((v >> BigInt(112 - i * 16)) & 0xffffn));
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i > 1) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

function parseCIDR(s: string): CIDR | undefined {
  const slash = s.indexOf('/');
  if (slash < 0) return undefined;
  const ip = parseIP(s.slice(0, slash));
  const bits = s.slice(slash + 1);
  if (!ip || !/^(0|[1-9]\d*)$/.test(bits)) return undefined;
  const prefix = Number(bits);
  if (prefix > (ip.family === 4 ? 32 : 128)) return undefined;
  return new CIDR(ip, prefix);
}

const width = (f: 4 | 6) => (f === 4 ? 32n : 128n);
function mask(c: CIDR): bigint {
  const w = width(c.ip.family);
  return ((1n << w) - 1n) ^ ((1n << (w - BigInt(c.prefix))) - 1n);
}
function contains(c: CIDR, ip: IPAddress): boolean {
  return c.ip.family === ip.family && (c.ip.value & mask(c)) === (ip.value & mask(c));
}
function inRange(ip: IPAddress, cidr: string): boolean {
  return contains(parseCIDR(cidr)!, ip);
}

const sameIP = (a: IPAddress, b: IPAddress) => a.family === b.family && a.value === b.value;
const ipOf = (s: string) => parseIP(s) ?? celError(`ip: ${JSON.stringify(s)} is not a valid IP address`);
const cidrOf = (s: string) => parseCIDR(s) ?? celError(`cidr: ${JSON.stringify(s)} is not a valid CIDR`);

export function registerIP(env: Environment): void {
  env
    .registerType('net.IP', IPAddress)
    .registerType('net.CIDR', CIDR)
    .registerFunction('ip(string): net.IP', ipOf)
    .registerFunction('isIP(string): bool', (s: string) => parseIP(s) !== undefined)
    .registerType('IPNamespace', IPNamespace)
    .registerConstant('ip', 'IPNamespace', new IPNamespace())
    .registerFunction('IPNamespace.isCanonical(string): bool', (_: unknown, s: string) => ipOf(s).toString() === s)
    .registerFunction('net.IP.family(): int', (ip: IPAddress) => BigInt(ip.family))
    .registerFunction('net.IP.isUnspecified(): bool', (ip: IPAddress) => ip.value === 0n)
    .registerFunction('net.IP.isLoopback(): bool', (ip: IPAddress) => (ip.family === 4 ? inRange(ip, '127.0.0.0/8') : ip.value === 1n))
    .registerFunction('net.IP.isLinkLocalMulticast(): bool', (ip: IPAddress) => inRange(ip, ip.family === 4 ? '224.0.0.0/24' : 'ff02::/16'))
    .registerFunction('net.IP.isLinkLocalUnicast(): bool', (ip: IPAddress) => inRange(ip, ip.family === 4 ? '169.254.0.0/16' : 'fe80::/10'))
    .registerFunction('net.IP.isGlobalUnicast(): bool', (ip: IPAddress) => {
      if (ip.family === 4) {
        return !(ip.value === 0n || ip.value === 0xffffffffn || inRange(ip, '127.0.0.0/8') || inRange(ip, '224.0.0.0/4') || inRange(ip, '169.254.0.0/16'));
      }
      return !(ip.value === 0n || ip.value === 1n || inRange(ip, 'ff00::/8') || inRange(ip, 'fe80::/10'));
    })
    .registerFunction('string(net.IP): string', (ip: IPAddress) => ip.toString())
    .registerFunction('cidr(string): net.CIDR', cidrOf)
    .registerFunction('isCIDR(string): bool', (s: string) => parseCIDR(s) !== undefined)
    .registerFunction('net.CIDR.containsIP(net.IP): bool', (c: CIDR, ip: IPAddress) => contains(c, ip))
    .registerFunction('net.CIDR.containsIP(string): bool', (c: CIDR, s: string) => contains(c, ipOf(s)))
    .registerFunction('net.CIDR.containsCIDR(net.CIDR): bool', (c: CIDR, o: CIDR) => o.prefix >= c.prefix && contains(c, o.ip))
    .registerFunction('net.CIDR.containsCIDR(string): bool', (c: CIDR, s: string) => {
      const o = cidrOf(s);
      return o.prefix >= c.prefix && contains(c, o.ip);
    })
    .registerFunction('net.CIDR.ip(): net.IP', (c: CIDR) => c.ip)
    .registerFunction('net.CIDR.masked(): net.CIDR', (c: CIDR) => new CIDR(new IPAddress(c.ip.family, c.ip.value & mask(c)), c.prefix))
    .registerFunction('net.CIDR.prefixLength(): int', (c: CIDR) => BigInt(c.prefix))
    .registerFunction('string(net.CIDR): string', (c: CIDR) => c.toString())
    // Kubernetes' IP and CIDR values compare with == (same address; same address and prefix)
    .registerOperator('net.IP == net.IP', sameIP)
    .registerOperator('net.CIDR == net.CIDR', (a: CIDR, b: CIDR) => a.prefix === b.prefix && sameIP(a.ip, b.ip));
}
