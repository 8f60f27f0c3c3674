/**
 * SSRF guard for webhook targets (the rules are in shared/webhooks/target.ts). The check happens at
 * connect time: the host is resolved once, every address is checked, and the connection goes to the checked address (TLS still verifies
 * the original name), so DNS rebinding between check and connect cannot pass. IPv4 spellings
 * (decimal, octal, hex, short forms) are normalised by the WHATWG URL parser before anything else.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import net from 'node:net';
import { buildConnector } from 'undici';
import { effectivePort, FORBIDDEN, isForbiddenAddress, normalizeHost, WebhookAllowList } from '@signspool/shared/webhooks/target';

export { FORBIDDEN };

export interface GuardOptions {
  /** WEBHOOK_ALLOW entries: hosts or CIDRs that may be reached even if private, each on its ports. */
  allow: string[];
  /** Resolver; defaults to the system's. Tests inject one to simulate rebinding. */
  resolve?: (host: string) => Promise<string[]>;
}

/** A refused target; the message has the detail (what the name resolves to) for the operator's log only. */
export class SsrfError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SsrfError';
  }
}

export class SsrfGuard {
  private readonly allow: WebhookAllowList;
  private readonly resolve: (host: string) => Promise<string[]>;

  constructor(opts: GuardOptions) {
    this.allow = new WebhookAllowList(opts.allow);
    this.resolve = opts.resolve ?? (async (host) => (await dnsLookup(host, { all: true, verbatim: true })).map((a) => a.address));
  }

  isForbiddenAddress(ip: string, port = 443): boolean {
    return isForbiddenAddress(ip) && !this.allow.admitsAddress(ip, port);
  }

  /** Resolves `hostname` (a URL hostname: IPv6 in brackets) and returns an address that may be used on `port`. */
  async check(hostname: string, port = 443): Promise<string> {
    const host = normalizeHost(hostname);
    if (this.allow.admitsHost(host, port)) {
      const [first] = net.isIP(host) ? [host] : await this.resolve(host);
      if (!first) throw new SsrfError(`${host} does not resolve`);
      return first;
    }
    const addresses = net.isIP(host) ? [host] : await this.resolve(host).catch(() => [] as string[]);
    if (addresses.length === 0) throw new SsrfError(`${host} does not resolve`);
    const bad = addresses.find((a) => this.isForbiddenAddress(a, port));
    if (bad) {
      const other = this.allow.listsAddressOnOtherPorts(bad, port) ? ` (WEBHOOK_ALLOW lists it for other ports, not ${port})` : '';
      throw new SsrfError(`refused: ${host} resolves to ${bad}, a loopback, private, link-local or reserved address${other}`);
    }
    return addresses[0] ?? host;
  }

  /** An undici connector that checks the target first and connects to the checked address. */
  connector(inner: buildConnector.connector = buildConnector({})): buildConnector.connector {
    return (options, callback) => {
      this.check(options.hostname, effectivePort(options.protocol, String(options.port ?? ''))).then(
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
