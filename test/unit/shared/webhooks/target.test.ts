/** What the api refuses of a webhook URL before any DNS lookup, and the address rules both sides share. */
import { describe, expect, it } from 'vitest';
import { isForbiddenAddress, normalizeHost, parseAllowEntry, refuseWebhookUrl, WebhookAllowList } from '@signspool/shared/webhooks/target';

const rules = (allow: string[] = [], allowHttp = false): { allow: WebhookAllowList; allowHttp: boolean } => ({ allow: new WebhookAllowList(allow), allowHttp });

describe('forbidden addresses', () => {
  it.each([
    '127.0.0.1',
    '10.1.2.3',
    '172.16.0.1',
    '192.168.1.1',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '::1',
    'fe80::1',
    'fd00::1',
    '::ffff:127.0.0.1',
    '::ffff:10.0.0.1',
  ])('%s is forbidden', (ip) => expect(isForbiddenAddress(ip)).toBe(true));
  it.each(['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111', '::ffff:8.8.8.8'])('%s is public', (ip) => expect(isForbiddenAddress(ip)).toBe(false));
  it('treats what is not an address as forbidden', () => expect(isForbiddenAddress('example.com')).toBe(true));
});

describe('normalizeHost', () => {
  it('lowercases, unbrackets IPv6 and drops trailing dots', () => {
    expect(normalizeHost('LOCALHOST.')).toBe('localhost');
    expect(normalizeHost('Example.COM..')).toBe('example.com');
    expect(normalizeHost('[::1]')).toBe('::1');
  });
});

describe('refuseWebhookUrl', () => {
  it('refuses what is not an http(s) URL, plain http unless allowed, and credentials', () => {
    expect(refuseWebhookUrl('nope', rules())).toBe('not a URL');
    expect(refuseWebhookUrl('ftp://example.com/', rules())).toMatch(/only https/);
    expect(refuseWebhookUrl('http://example.com/', rules())).toMatch(/https is required/);
    expect(refuseWebhookUrl('http://example.com/', rules([], true))).toBeUndefined();
    expect(refuseWebhookUrl('https://u:p@example.com/', rules())).toMatch(/credentials/);
  });

  it.each(['https://127.0.0.1/', 'https://2130706433/', 'https://0x7f.1/', 'https://[::1]/', 'https://[::ffff:7f00:1]/', 'https://10.0.0.1:8443/'])(
    'refuses the literal forbidden address in %s, however it is spelled',
    (url) => expect(refuseWebhookUrl(url, rules())).toMatch(/loopback, private, link-local or reserved/),
  );

  it.each(['https://localhost/', 'https://LOCALHOST./', 'https://localhost./', 'https://app.localhost/', 'https://a.LocalHost../'])('refuses %s', (url) =>
    expect(refuseWebhookUrl(url, rules())).toMatch(/always names this machine/),
  );

  it('admits public names and addresses (DNS is judged later, at connect time)', () => {
    expect(refuseWebhookUrl('https://hooks.example.com/x', rules())).toBeUndefined();
    expect(refuseWebhookUrl('https://8.8.8.8/', rules())).toBeUndefined();
  });

  it('admits what WEBHOOK_ALLOW lists, on its ports only, and says when only the port is wrong', () => {
    const r = rules(['10.0.0.0/8:8443', 'localhost:*']);
    expect(refuseWebhookUrl('https://10.1.2.3:8443/', r)).toBeUndefined();
    expect(refuseWebhookUrl('https://10.1.2.3/', r)).toMatch(/lists it for other ports, not 443/);
    expect(refuseWebhookUrl('https://localhost:9999/', r)).toBeUndefined();
  });
});

describe('WEBHOOK_ALLOW entries', () => {
  it('parses hosts, ports, wildcards, CIDRs and IPv6 forms', () => {
    expect(parseAllowEntry('hooks.internal')).toBeDefined();
    expect(parseAllowEntry('hooks.internal:8443')).toBeDefined();
    expect(parseAllowEntry('10.0.0.0/8:*')).toBeDefined();
    expect(parseAllowEntry('[fd00::/8]:443')).toBeDefined();
    expect(parseAllowEntry('fd00::1')).toBeDefined();
  });
  it('rejects malformed entries, and the list refuses to be built from one', () => {
    expect(parseAllowEntry('host:notaport')).toBeUndefined();
    expect(parseAllowEntry('[fd00::/8]:x')).toBeUndefined();
    expect(() => new WebhookAllowList(['host:notaport'])).toThrow(/malformed entry/);
  });
});
