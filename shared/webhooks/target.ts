/**
 * Which webhook targets signspool may reach: the addresses no webhook may reach (loopback,
 * private, link-local, reserved, and IPv6 forms that embed IPv4), the WEBHOOK_ALLOW exceptions
 * (hosts and CIDRs, each admitting only its ports), and the judgement of a URL at submit time
 * (scheme, credentials, literal addresses, ports). The api judges at submit what it can; the
 * worker's SSRF guard judges again at connect time, after DNS resolution.
 */
import net from 'node:net';

/** Addresses a webhook may never reach (IPv4-mapped `::ffff:a.b.c.d` forms are matched by the IPv4 rules). */
export const FORBIDDEN = (() => {
  const list = new net.BlockList();
  const add = (cidr: string, family: 'ipv4' | 'ipv6'): void => {
    const [addr, bits] = cidr.split('/');
    list.addSubnet(addr ?? '', Number(bits), family);
  };
  [
    '0.0.0.0/8', // unspecified, "this network"
    '10.0.0.0/8', // private
    '100.64.0.0/10', // CGNAT
    '127.0.0.0/8', // loopback
    '169.254.0.0/16', // link-local, cloud metadata 169.254.169.254
    '172.16.0.0/12', // private
    '192.0.0.0/24', // IETF protocol assignments
    '192.0.2.0/24', // documentation
    '192.88.99.0/24', // 6to4 relay
    '192.168.0.0/16', // private
    '198.18.0.0/15', // benchmarking
    '198.51.100.0/24', // documentation
    '203.0.113.0/24', // documentation
    '224.0.0.0/4', // multicast
    '240.0.0.0/4', // reserved, broadcast
  ].forEach((c) => add(c, 'ipv4'));
  [
    '::/96', // unspecified, loopback and IPv4-compatible [::a.b.c.d] (deprecated, embeds IPv4)
    '::ffff:0:0:0/96', // IPv4-translated [::ffff:0:a.b.c.d] (SIIT, embeds IPv4)
    '64:ff9b::/96', // NAT64 (embeds IPv4)
    '64:ff9b:1::/48', // local-use NAT64 (embeds IPv4)
    '100::/64', // discard
    '2001::/23', // IETF protocol assignments, including Teredo 2001::/32 (embeds IPv4)
    '2001:db8::/32', // documentation
    '2002::/16', // 6to4 (embeds IPv4)
    'fc00::/7', // unique local (includes fd00:ec2::254, AWS metadata)
    'fe80::/10', // link-local
    'fec0::/10', // site-local (deprecated)
    'ff00::/8', // multicast
  ].forEach((c) => add(c, 'ipv6'));
  return list;
})();

const family = (ip: string): 'ipv4' | 'ipv6' => (net.isIPv4(ip) ? 'ipv4' : 'ipv6');

export const isForbiddenAddress = (ip: string): boolean => !net.isIP(ip) || FORBIDDEN.check(ip, family(ip));

/** Ports an allowlist entry admits: listed, any (`:*`), or when none is written 80 and 443 only. */
type Ports = 'any' | readonly number[];
const DEFAULT_PORTS: readonly number[] = [80, 443];

interface AllowEntry {
  host?: string;
  net?: { addr: string; bits: number; family: 'ipv4' | 'ipv6' };
  ports: Ports;
}

const parsePort = (raw: string | undefined): Ports | undefined => {
  if (raw === undefined) return DEFAULT_PORTS;
  if (raw === '*') return 'any';
  const n = Number(raw);
  return /^\d{1,5}$/.test(raw) && n >= 1 && n <= 65535 ? [n] : undefined;
};

const parseTarget = (target: string, ports: Ports, v6Only: boolean): AllowEntry | undefined => {
  const [addr = '', bits, extra] = target.split('/');
  if (extra !== undefined) return undefined;
  const fam = net.isIPv4(addr) ? 'ipv4' : net.isIPv6(addr) ? 'ipv6' : undefined;
  if (v6Only && fam !== 'ipv6') return undefined;
  if (fam) {
    const max = fam === 'ipv4' ? 32 : 128;
    const n = bits === undefined ? max : Number(bits);
    if (!/^\d{1,3}$/.test(bits ?? '0') || n > max) return undefined;
    return { net: { addr, bits: n, family: fam }, ports };
  }
  if (bits !== undefined || !/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i.test(addr)) return undefined;
  return { host: addr.toLowerCase(), ports };
};

/**
 * One WEBHOOK_ALLOW entry: `host`, `host:port`, `host:*`, `10.0.0.0/8:8443`, `[fd00::/8]:443`,
 * or a bare IPv6 address or CIDR (default ports). Undefined when malformed.
 */
export const parseAllowEntry = (raw: string): AllowEntry | undefined => {
  const bracketed = /^\[([^\]]+)\](?::([^:]+))?$/.exec(raw);
  if (bracketed) {
    const ports = parsePort(bracketed[2]);
    return ports && bracketed[1] ? parseTarget(bracketed[1], ports, true) : undefined;
  }
  if ((raw.match(/:/g) ?? []).length > 1) return parseTarget(raw, DEFAULT_PORTS, true);
  const [target = '', port] = raw.split(':');
  const ports = parsePort(port);
  return ports ? parseTarget(target, ports, false) : undefined;
};

const portAdmitted = (ports: Ports, port: number): boolean => ports === 'any' || ports.includes(port);

/** The WEBHOOK_ALLOW exceptions: a host or network on its ports may be reached even when private. */
export class WebhookAllowList {
  private readonly entries: AllowEntry[];

  /** Throws on a malformed entry (the config validates them at start). */
  constructor(raw: readonly string[]) {
    this.entries = raw.map((r) => {
      const e = parseAllowEntry(r);
      if (!e) throw new Error(`WEBHOOK_ALLOW: malformed entry ${JSON.stringify(r)}`);
      return e;
    });
  }

  /** Whether the host name (lowercase, IPv6 without brackets) is listed for this port. */
  admitsHost(host: string, port: number): boolean {
    return this.entries.some((e) => e.host === host && portAdmitted(e.ports, port));
  }

  /** Whether the address falls in a listed address or CIDR for this port. */
  admitsAddress(ip: string, port: number): boolean {
    return this.entries.some((e) => portAdmitted(e.ports, port) && inNet(e, ip));
  }

  /** Whether the address is listed for other ports only (to say so in the refusal). */
  listsAddressOnOtherPorts(ip: string, port: number): boolean {
    return !this.admitsAddress(ip, port) && this.entries.some((e) => inNet(e, ip));
  }
}

const inNet = (e: AllowEntry, ip: string): boolean => {
  if (!e.net || !net.isIP(ip)) return false;
  const one = new net.BlockList();
  one.addSubnet(e.net.addr, e.net.bits, e.net.family);
  return one.check(ip, family(ip));
};

/**
 * A URL host as the rules compare it: lowercase, IPv6 without brackets, without the trailing dot
 * of a fully qualified name (`localhost.` and `LOCALHOST.` are `localhost`; DNS treats them alike).
 */
export const normalizeHost = (hostname: string): string =>
  hostname
    .replace(/^\[(.*)\]$/, '$1')
    .replace(/\.+$/, '')
    .toLowerCase();

/**
 * What the tenant is told when a webhook target is refused after DNS (a name that resolves to a
 * forbidden address, or does not resolve): the same words either way, so that the answers map
 * no internal name. The operator's log keeps the detail.
 */
export const TARGET_NOT_ALLOWED = 'refused: the target is not an allowed webhook address (it must resolve to public addresses only)';

/** The port a URL connects to. */
export const effectivePort = (protocol: string, port: string): number => (port ? Number(port) : protocol === 'https:' ? 443 : 80);

export interface TargetRules {
  allow: WebhookAllowList;
  allowHttp: boolean;
}

/**
 * What can be judged of a webhook URL before any DNS lookup: scheme, credentials, a literal
 * address and its port, `localhost` names. Returns the reason for refusing it, or undefined.
 */
export const refuseWebhookUrl = (raw: string, rules: TargetRules): string | undefined => {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'not a URL';
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'only https (or http with WEBHOOK_ALLOW_HTTP=true) URLs are allowed';
  if (url.protocol === 'http:' && !rules.allowHttp) return 'https is required (WEBHOOK_ALLOW_HTTP=false)';
  if (url.username !== '' || url.password !== '') return 'credentials in the URL are refused (receivers authenticate signspool by the webhook signature)';
  const host = normalizeHost(url.hostname);
  const port = effectivePort(url.protocol, url.port);
  if (rules.allow.admitsHost(host, port)) return undefined;
  if (net.isIP(host)) {
    if (!isForbiddenAddress(host) || rules.allow.admitsAddress(host, port)) return undefined;
    const other = rules.allow.listsAddressOnOtherPorts(host, port) ? ` (WEBHOOK_ALLOW lists it for other ports, not ${port})` : '';
    return `${host} is a loopback, private, link-local or reserved address${other}`;
  }
  if (host === 'localhost' || host.endsWith('.localhost')) return `${host} always names this machine`;
  return undefined;
};
