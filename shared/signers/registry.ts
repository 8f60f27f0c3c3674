/**
 * The signing identities a process runs with, and their reload. `identities` is the current
 * snapshot; `reload()` reads SIGNERS_FILE (and its secret files) again and swaps the snapshot
 * only when the whole file is valid: a bad file keeps the running configuration, logs one line at
 * error saying why, and counts a failure. Listeners hear of every change (the worker replaces the
 * signer of a changed identity; the api refuses a removed one). bin/start.ts reloads on SIGHUP;
 * api and worker in one process share one registry. Reloads run one at a time, in order. With
 * SIGNERS_FILE_WATCH, start() also watches the directories of SIGNERS_FILE and of every file it
 * names (a Kubernetes volume update swaps a symlink in the directory) and reloads after a change
 * settles.
 */
import { watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { configLoaded, configReloaded, type ReloadMetrics } from '../metrics.js';
import { loadSigningIdentities, SignersFileError } from './file.js';
import type { SigningIdentities } from './identities.js';

export type ReloadResult = { ok: true; changed: string[]; tenantsChanged: boolean } | { ok: false; error: string };

/** What asked for a reload (its log line says so). */
export type ReloadTrigger = 'signal' | 'watch' | 'unknown-identity' | 'call';

/** A watched change reloads once events have stopped for this long (an editor or a volume update writes several). */
const WATCH_SETTLE_MS = 500;

/** Called after a successful reload that changed something; `changed`: identities added, removed or changed. */
export type SignersChangeListener = (next: SigningIdentities, previous: SigningIdentities, changed: readonly string[]) => void;

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
  private readonly watchers = new Map<string, FSWatcher>();
  private settle: NodeJS.Timeout | undefined;
  private watching = false;

  /** Throws SignersFileError when the file is not valid (loadConfig checked it already at start). */
  constructor(private readonly deps: SignerRegistryDeps) {
    this.current = deps.initial ?? loadSigningIdentities(deps.config);
    configLoaded(deps.metrics, 'signers');
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
  reload(trigger: ReloadTrigger = 'call'): Promise<ReloadResult> {
    const run = this.queue.then(() => this.reloadNow(trigger));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private reloadNow(trigger: ReloadTrigger): ReloadResult {
    const { logger, metrics, config } = this.deps;
    let next: SigningIdentities;
    try {
      next = loadSigningIdentities(config);
    } catch (err) {
      // SignersFileError messages name file, identity and field, never a value; anything else is reduced to its class.
      const error = err instanceof SignersFileError ? err.message : `SIGNERS_FILE ${config.signersFile ?? ''}: ${err instanceof Error ? err.name : 'error'}`;
      configReloaded(metrics, 'signers', false);
      logger.error({ reason: error, trigger }, 'signing identities not reloaded: keeping the running configuration');
      return { ok: false, error };
    }
    const previous = this.current;
    const changed = next.changedFrom(previous);
    const tenantsChanged = next.tenantsChangedFrom(previous);
    this.current = next;
    configReloaded(metrics, 'signers', true);
    // A watched directory also changes for files of no identity: an unchanged reload is not news then.
    const quiet = trigger === 'watch' && changed.length === 0 && !tenantsChanged;
    logger[quiet ? 'debug' : 'info']({ changed, tenantsChanged, signers: next.names().length, trigger }, 'signing identities reloaded');
    if (this.watching) this.follow(next.files);
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

  /** With SIGNERS_FILE_WATCH, starts watching (SIGHUP is wired by bin/start.ts). Idempotent. */
  start(): Promise<void> {
    if (!this.watching && this.deps.config.signersWatch && this.deps.config.signersFile !== undefined) {
      this.watching = true;
      this.follow(this.current.files.length > 0 ? this.current.files : [this.deps.config.signersFile]);
    }
    return Promise.resolve();
  }

  /** Watches the directories of `files` (and only those): the set follows each successful reload. */
  private follow(files: readonly string[]): void {
    const dirs = new Set(files.map((f) => path.dirname(f)));
    for (const [dir, w] of this.watchers) {
      if (dirs.has(dir)) continue;
      w.close();
      this.watchers.delete(dir);
    }
    for (const dir of dirs) {
      if (this.watchers.has(dir)) continue;
      try {
        const w = watch(dir, { persistent: false }, () => this.changed());
        w.on('error', (err) => this.deps.logger.warn({ err, dir }, 'stopped watching a directory of SIGNERS_FILE'));
        this.watchers.set(dir, w);
      } catch (err) {
        this.deps.logger.warn({ err, dir }, 'cannot watch a directory of SIGNERS_FILE: SIGHUP still reloads');
      }
    }
  }

  private changed(): void {
    clearTimeout(this.settle);
    this.settle = setTimeout(() => void this.reload('watch'), WATCH_SETTLE_MS);
    this.settle.unref();
  }

  /** Stops watching, forgets the listeners and waits for a reload under way. Idempotent. */
  async stop(): Promise<void> {
    this.watching = false;
    clearTimeout(this.settle);
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
    this.listeners.clear();
    await this.queue;
  }
}
