/** Tracing start/stop (unit): off without an endpoint (nothing registered); on, spans record and stop flushes within its deadline, once. */
import { describe, expect, it } from 'vitest';
import { captureLogs } from '../../harness/log-capture.js';
import { tracer } from '@signspool/shared/spans';
import { defaultServiceName, startTracing } from '../../../bin/tracing.js';

describe('tracing', () => {
  it('names the service by role', () => {
    expect(['api', 'worker', 'all'].map((r) => defaultServiceName(r as 'api'))).toEqual(['signspool-api', 'signspool-worker', 'signspool']);
  });

  it('is off without an endpoint: nothing is registered, spans record nothing', async () => {
    const { lines, logger } = captureLogs();
    const tracing = await startTracing({ tracesUrl: undefined, protocol: 'http/protobuf', headers: {}, serviceName: undefined }, 'api', logger);
    expect(tracing.enabled).toBe(false);
    const span = tracer.startSpan('off');
    expect(span.isRecording()).toBe(false);
    span.end();
    await tracing.stop();
    expect(lines).toEqual([]);
  });

  it('is on with an endpoint; stop gives up at its deadline when the collector cannot be reached, and is idempotent', async () => {
    const { lines, logger } = captureLogs();
    // Port 9 (discard) on loopback: nothing listens.
    const tracing = await startTracing(
      { tracesUrl: 'http://127.0.0.1:9/v1/traces', protocol: 'http/json', headers: {}, serviceName: 'unit' },
      'worker',
      logger,
    );
    expect(tracing.enabled).toBe(true);
    const span = tracer.startSpan('on');
    expect(span.isRecording()).toBe(true);
    span.end();
    const started = Date.now();
    const first = tracing.stop(300);
    expect(tracing.stop(300)).toBe(first);
    await first;
    expect(Date.now() - started).toBeLessThan(5000);
    expect(lines[0]).toMatchObject({
      msg: 'tracing on: exporting spans over OTLP',
      url: 'http://127.0.0.1:9/v1/traces',
      protocol: 'http/json',
      serviceName: 'unit',
    });
    expect(lines[1]).toMatchObject({ msg: 'tracing: the last spans were not exported before the deadline', deadlineMs: 300 });
  });
});
