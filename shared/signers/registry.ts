/**
 * The signing identities a process runs with, and their reload. `identities` is the current
 * snapshot; `reload()` reads SIGNERS_FILE (and its secret files) again and swaps the snapshot
 * only when the whole file is valid: a bad file keeps the running configuration, logs one line at
 * error saying why, and counts a failure. Listeners hear of every change (the worker replaces the
 * signer of a changed identity; the api refuses a removed one). bin/start.ts reloads on SIGHUP;
 * api and worker in one process share one registry. Reloads run one at a time, in order.
 */
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { loadSigningIdentities, SignersFileError } from './file.js';
import type { SigningIdentities } from './identities.js';

export type ReloadResult = { ok: true; changed: string[]; tenantsChanged: boolean } | { ok: false; error: string };

/** Called after a successful reload that changed something; `changed`: identities added, removed or changed. */
export type SignersChangeListener = (next: SigningIdentities, previous: SigningIdentities, changed: readonly string[]) => void;

export type ReloadMetrics = Pick<Metrics, 'configReloads' | 'configLastReloadSuccessful' | 'configLastReloadSuccessTimestamp'>;

export interface SignerRegistryDeps {
  config: Config;
  logger: Logger;
  metrics?: ReloadMetrics;
  /** The snapshot to start with (else loaded from `config`: SIGNERS_FILE or the environment). */
  initial?: SigningIdentities;
}

export class SignerRegistry {
  private current: SigningIdentities;
  private readonly listeners = new Set<SignersChangeListener>();
  private queue: Promise<unknown> = Promise.resolve();

  /** Throws SignersFileError when the file is not valid (loadConfig checked it already at start). */
  constructor(private readonly deps: SignerRegistryDeps) {
    this.current = deps.initial ?? loadSigningIdentities(deps.config);
    deps.metrics?.configLastReloadSuccessful.set(1);
    deps.metrics?.configLastReloadSuccessTimestamp.set(Date.now() / 1000);
  }

  get identities(): SigningIdentities {
    return this.current;
  }

  /** The SIGNERS_FILE path, or undefined when the identity comes from the environment. */
  get file(): string | undefined {
    return this.deps.config.signersFile;
  }

  /** Subscribes to changes; returns the unsubscribe function. */
  onChange(listener: SignersChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Reads the configuration again. Without SIGNERS_FILE nothing can change: a success with no change. */
  reload(): Promise<ReloadResult> {
    const run = this.queue.then(() => this.reloadNow());
    this.queue = run.catch(() => undefined);
    return run;
  }

  private reloadNow(): ReloadResult {
    const { logger, metrics, config } = this.deps;
    let next: SigningIdentities;
    try {
      next = loadSigningIdentities(config);
    } catch (err) {
      // SignersFileError messages name file, identity and field, never a value; anything else is reduced to its class.
      const error = err instanceof SignersFileError ? err.message : `SIGNERS_FILE ${config.signersFile ?? ''}: ${err instanceof Error ? err.name : 'error'}`;
      metrics?.configReloads.inc({ outcome: 'failure' });
      metrics?.configLastReloadSuccessful.set(0);
      logger.error({ reason: error }, 'signing identities not reloaded: keeping the running configuration');
      return { ok: false, error };
    }
    const previous = this.current;
    const changed = next.changedFrom(previous);
    const tenantsChanged = next.tenantsChangedFrom(previous);
    this.current = next;
    metrics?.configReloads.inc({ outcome: 'success' });
    metrics?.configLastReloadSuccessful.set(1);
    metrics?.configLastReloadSuccessTimestamp.set(Date.now() / 1000);
    logger.info({ changed, tenantsChanged, signers: next.names().length }, 'signing identities reloaded');
    if (changed.length > 0 || tenantsChanged) {
      for (const listener of this.listeners) {
        try {
          listener(next, previous, changed);
        } catch (err) {
          // One listener's failure must not keep the others from hearing of the change.
          logger.error({ err }, 'a listener of the signing identities failed');
        }
      }
    }
    return { ok: true, changed, tenantsChanged };
  }

  /** Nothing to start (SIGHUP is wired by bin/start.ts); kept for the lifecycle's symmetry. Idempotent. */
  start(): Promise<void> {
    return Promise.resolve();
  }

  /** Forgets the listeners and waits for a reload under way. Idempotent. */
  async stop(): Promise<void> {
    this.listeners.clear();
    await this.queue;
  }
}
