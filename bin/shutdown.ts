/**
 * Shutdown manager: stops registered components in reverse order of registration, all within one
 * deadline. A component that overruns is abandoned (logged) so the process still exits.
 */
import type { Logger } from '../shared/logger.js';

interface Stoppable {
  name: string;
  stop: () => Promise<void>;
}

export class ShutdownManager {
  private readonly components: Stoppable[] = [];
  private running: Promise<boolean> | undefined;

  constructor(
    private readonly logger: Logger,
    private readonly deadlineMs: number,
  ) {}

  register(name: string, stop: () => Promise<void>): void {
    this.components.push({ name, stop });
  }

  /** Resolves true when every component stopped before the deadline. Idempotent. */
  shutdown(reason: string): Promise<boolean> {
    this.running ??= (async () => {
      this.logger.info({ reason, deadlineMs: this.deadlineMs }, 'shutting down');
      const deadline = Date.now() + this.deadlineMs;
      let clean = true;
      for (const c of [...this.components].reverse()) {
        const left = Math.max(0, deadline - Date.now());
        let timer: NodeJS.Timeout | undefined;
        const result = await Promise.race([
          c.stop().then(
            () => 'ok' as const,
            (err: unknown) => {
              this.logger.error({ err, component: c.name }, 'component failed to stop');
              return 'error' as const;
            },
          ),
          new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), left))),
        ]);
        clearTimeout(timer);
        if (result !== 'ok') clean = false;
        if (result === 'timeout') this.logger.error({ component: c.name }, 'component did not stop before the shutdown deadline');
      }
      return clean;
    })();
    return this.running;
  }

  /** SIGTERM / SIGINT run the shutdown, then exit. A second signal exits at once. */
  installSignalHandlers(exit: (code: number) => void = (code) => process.exit(code)): void {
    let signaled = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (signaled) {
        exit(130);
        return;
      }
      signaled = true;
      void this.shutdown(signal).then((clean) => exit(clean ? 0 : 1));
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    // A rejection nobody handles is a bug: it is logged; it must not take in-flight batches down with it.
    process.on('unhandledRejection', (reason) => this.logger.error({ err: reason }, 'unhandled promise rejection'));
  }
}
