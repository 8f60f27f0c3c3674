/**
 * Starts and stops OpenTelemetry tracing for one process. Off unless an OTLP endpoint is set
 * (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT): then nothing of the SDK is
 * loaded, and the spans the code makes (shared/spans.ts) are @opentelemetry/api's no-ops. When on,
 * a Node tracer provider (@opentelemetry/sdk-trace-node: context through AsyncLocalStorage, the
 * sampler and batch settings from the standard OTEL_* variables) exports spans over OTLP/HTTP
 * (protobuf or JSON) and propagates W3C trace context. No auto-instrumentation, no metrics, no log
 * export: the spans are the code's own. The all-in-one @opentelemetry/sdk-node is not used: it
 * brings every exporter (gRPC included, which is not offered) into the production install.
 */
import type { Config } from '../shared/config.js';
import type { Logger } from '../shared/logger.js';

export type TracingSettings = Config['tracing'];
export type TracingRole = 'api' | 'worker' | 'all';

export interface Tracing {
  readonly enabled: boolean;
  /** Flushes the spans not exported yet, for at most `deadlineMs`; idempotent, never throws. */
  stop(deadlineMs?: number): Promise<void>;
}

const OFF: Tracing = { enabled: false, stop: () => Promise.resolve() };

/** The service name when OTEL_SERVICE_NAME is unset. */
export const defaultServiceName = (role: TracingRole): string => (role === 'all' ? 'signspool' : `signspool-${role}`);

const DEFAULT_STOP_DEADLINE_MS = 5000;

export const startTracing = async (settings: TracingSettings, role: TracingRole, logger: Logger): Promise<Tracing> => {
  const url = settings.tracesUrl;
  if (url === undefined) return OFF;
  // Loaded only now: a process without an endpoint never loads the SDK.
  const [{ NodeTracerProvider, BatchSpanProcessor }, { W3CTraceContextPropagator }, { detectResources, envDetector, resourceFromAttributes }, exporterModule] =
    await Promise.all([
      import('@opentelemetry/sdk-trace-node'),
      import('@opentelemetry/core'),
      import('@opentelemetry/resources'),
      settings.protocol === 'http/json' ? import('@opentelemetry/exporter-trace-otlp-http') : import('@opentelemetry/exporter-trace-otlp-proto'),
    ]);
  const serviceName = settings.serviceName ?? defaultServiceName(role);
  // OTEL_RESOURCE_ATTRIBUTES, then the service name (which wins).
  const resource = detectResources({ detectors: [envDetector] }).merge(resourceFromAttributes({ 'service.name': serviceName }));
  const provider = new NodeTracerProvider({
    resource,
    spanProcessors: [new BatchSpanProcessor(new exporterModule.OTLPTraceExporter({ url, headers: settings.headers }))],
  });
  provider.register({ propagator: new W3CTraceContextPropagator() });
  logger.info({ url, protocol: settings.protocol, serviceName }, 'tracing on: exporting spans over OTLP');
  let stopping: Promise<void> | undefined;
  return {
    enabled: true,
    stop(deadlineMs = DEFAULT_STOP_DEADLINE_MS) {
      stopping ??= (async () => {
        let timer: NodeJS.Timeout | undefined;
        const flushed = await Promise.race([
          provider.shutdown().then(
            () => true,
            (err: unknown) => {
              logger.warn({ err: { message: (err as Error).message } }, 'tracing: could not export the last spans');
              return true;
            },
          ),
          new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), deadlineMs))),
        ]);
        clearTimeout(timer);
        if (!flushed) logger.warn({ deadlineMs }, 'tracing: the last spans were not exported before the deadline');
      })();
      return stopping;
    },
  };
};
