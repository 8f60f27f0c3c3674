/**
 * pino, with redaction: no authorization header, secret, token, API key or document content
 * ever reaches a log line. Child loggers carry opId / batchId; a line written while a span is
 * active carries its trace_id and span_id (shared/spans.ts).
 */
import { pino, type Logger, type LoggerOptions } from 'pino';
import { activeTraceIds } from './spans.js';

export type { Logger } from 'pino';

export const REDACT_PATHS = [
  'authorization',
  'password',
  'secret',
  'clientSecret',
  'token',
  'accessToken',
  'access_token',
  'apiKey',
  'base64Content',
  'signedContent',
  'content',
  'body',
  '*.authorization',
  '*.password',
  '*.secret',
  '*.clientSecret',
  '*.token',
  '*.accessToken',
  '*.access_token',
  '*.apiKey',
  '*.base64Content',
  '*.signedContent',
  '*.content',
  '*.body',
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["idempotency-key"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'config.signstash.clientSecret',
  'config.localSigner.p12Password',
  'config.apiKeys',
  // A signing identity (shared/signers) logged whole, or its settings.
  '*.p12Password',
  '*.signstash.clientSecret',
  '*.local.p12Password',
];

export interface LoggerSettings {
  level: LoggerOptions['level'];
  name?: string;
}

export const createLogger = (settings: LoggerSettings, destination?: NodeJS.WritableStream): Logger =>
  pino(
    {
      level: settings.level ?? 'info',
      ...(settings.name === undefined ? {} : { name: settings.name }),
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      serializers: { err: pino.stdSerializers.err },
      // A new object each time: pino merges the line's own fields into it.
      mixin: () => activeTraceIds() ?? {},
    },
    destination as pino.DestinationStream | undefined,
  );

/** A logger that writes nothing (tests that do not care). */
export const silentLogger = (): Logger => pino({ level: 'silent' });
