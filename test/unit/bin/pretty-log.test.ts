/** LOG_FORMAT=pretty: one readable line per entry, after pino's redaction; JSON stays the default. */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '@signspool/shared/config';
import { createLogger } from '@signspool/shared/logger';
import { formatPrettyLine, prettyDestination } from '../../../bin/pretty-log.js';

describe('pretty log format', () => {
  it('prints time, level, name, message and fields on one line, without redacted values', () => {
    let out = '';
    const logger = createLogger({ level: 'info', name: 'signspool-all' }, prettyDestination({ write: (t: string) => (out += t) }));
    logger.warn({ redis: 'redis://127.0.0.1:1', error: 'ECONNREFUSED', apiKey: 'ssk_do_not_print' }, 'cannot reach Redis');
    const lines = out.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^\d\d:\d\d:\d\d\.\d{3} WARN {2}signspool-all: cannot reach Redis redis=redis:\/\/127\.0\.0\.1:1 error=ECONNREFUSED apiKey=\[redacted\]$/,
    );
    expect(out).not.toContain('ssk_do_not_print');
  });

  it('quotes values with spaces and leaves lines that are not JSON alone', () => {
    expect(formatPrettyLine('{"level":30,"time":"2026-01-01T10:00:00.000Z","msg":"m","signer":"local (dev cert)"}', false)).toBe(
      '10:00:00.000 INFO  m signer="local (dev cert)"',
    );
    expect(formatPrettyLine('plain text', false)).toBe('plain text');
  });

  it('is chosen with LOG_FORMAT=pretty; json by default', () => {
    expect(loadConfig({}).logFormat).toBe('json');
    expect(loadConfig({ LOG_FORMAT: 'pretty' }).logFormat).toBe('pretty');
    expect(() => loadConfig({ LOG_FORMAT: 'fancy' })).toThrow(/LOG_FORMAT/);
  });
});
