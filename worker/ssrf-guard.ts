/**
 * SSRF guard for webhook targets. The check happens at connect time: the host is resolved once,
 * every address is checked, and the connection goes to the checked address (TLS still verifies
 * the original name), so DNS rebinding between check and connect cannot pass. IPv4 spellings
 * (decimal, octal, hex, short forms) are normalised by the WHATWG URL parser before anything else.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import net from 'node:net';
import { buildConnector } from 'undici';

const v4 = (list: net.BlockList, cidr: string): void => {
  const [addr, bits] = cidr.split('/');
  list.addSubnet(addr ?? '', Number(bits), 'ipv4');
};
const v6 = (list: net.BlockList, cidr: string): void => {
  const [addr, bits] = cidr.split('/');
  list.addSubnet(addr ?? '', Number(bits), 'ipv6');
};

/** Addresses a webhook may never reach (IPv4-mapped IPv6 forms are matched by the IPv4 rules). */
export const FORBIDDEN = (() => {
  const list = new net.BlockList();
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
  ].forEach((c) => v4(list, c));
  [
    '::/128', // unspecified
    '::1/128', // loopback
    '64:ff9b::/96', // NAT64 (embeds IPv4)
    '100::/64', // discard
    '2001:db8::/32', // documentation
    '2002::/16', // 6to4 (embeds IPv4)
    'fc00::/7', // unique local (includes fd00:ec2::254, AWS metadata)
    'fe80::/10', // link-local
    'fec0::/10', // site-local (deprecated)
    'ff00::/8', // multicast
  ].forEach((c) => v6(list, c));
  return list;
})();

export interface GuardOptions {
  /** Hosts (exact names) or CIDRs that are allowed even if private (tests, local development). */
  allow: string[];
  /** Resolver; defaults to the system's. Tests inject one to simulate rebinding. */
  resolve?: (host: string) => Promise<string[]>;
}

export class SsrfError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SsrfError';
  }
}

const family = (ip: string): 'ipv4' | 'ipv6' => (net.isIPv4(ip) ? 'ipv4' : 'ipv6');

export class SsrfGuard {
  private readonly allowHosts = new Set<string>();
  private readonly allowNets = new net.BlockList();
  private readonly resolve: (host: string) => Promise<string[]>;

  constructor(opts: GuardOptions) {
    for (const entry of opts.allow) {
      const [addr, bits] = entry.split('/');
      if (addr && bits !== undefined && net.isIP(addr)) this.allowNets.addSubnet(addr, Number(bits), family(addr));
      else if (addr && net.isIP(addr)) this.allowNets.addAddress(addr, family(addr));
      else if (entry) this.allowHosts.add(entry.toLowerCase());
    }
    this.resolve = opts.resolve ?? (async (host) => (await dnsLookup(host, { all: true, verbatim: true })).map((a) => a.address));
  }

  isForbiddenAddress(ip: string): boolean {
    if (!net.isIP(ip)) return true;
    if (this.allowNets.check(ip, family(ip))) return false;
    return FORBIDDEN.check(ip, family(ip));
  }

  /** Resolves `hostname` (a URL hostname: IPv6 in brackets) and returns an address that may be used. */
  async check(hostname: string): Promise<string> {
    const host = hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
    if (this.allowHosts.has(host)) {
      const [first] = net.isIP(host) ? [host] : await this.resolve(host);
      if (!first) throw new SsrfError(`${host} does not resolve`);
      return first;
    }
    const addresses = net.isIP(host) ? [host] : await this.resolve(host).catch(() => [] as string[]);
    if (addresses.length === 0) throw new SsrfError(`${host} does not resolve`);
    const bad = addresses.find((a) => this.isForbiddenAddress(a));
    if (bad) throw new SsrfError(`refused: ${host} resolves to ${bad}, a loopback, private, link-local or reserved address`);
    return addresses[0] ?? host;
  }

  /** An undici connector that checks the target first and connects to the checked address. */
  connector(inner: buildConnector.connector = buildConnector({})): buildConnector.connector {
    return (options, callback) => {
      this.check(options.hostname).then(
        (address) => {
          const isLiteral = net.isIP(options.hostname.replace(/^\[(.*)\]$/, '$1')) !== 0;
          const servername = options.servername ?? (isLiteral ? undefined : options.hostname);
          inner({ ...options, hostname: address, ...(servername === undefined ? {} : { servername }) }, callback);
        },
        (err: unknown) => callback(err instanceof Error ? err : new Error(String(err)), null),
      );
    };
  }
}
