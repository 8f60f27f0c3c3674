/**
 * One lane per signing identity: its signer (built on first use, with its own OAuth token manager
 * or certificate), its circuit breaker and its batch runner, so that one identity's failures touch
 * only its own documents. The worker asks for a lane by identity name when it dispatches a batch.
 *
 * Reload (SignerRegistry): a changed identity's lane is retired — the batches it runs finish with
 * what they started, then its signer is stopped — and the next batch gets a fresh lane built from
 * the new settings (new secret, new breaker). A removed identity's documents get a lane whose
 * signer fails them with SIGNER_REMOVED. A name the registry does not know triggers one reload
 * first (a worker that has not heard the SIGHUP yet must not fail a document of a new identity).
 *
 * Each lane's state (circuit, token expiry, last error, certificate) is published to Redis every
 * few seconds for GET /v1/admin/signers (shared/circuit-state.ts) and exported as metrics.
 */
import type { Redis } from 'ioredis';
import { forgetSignerStates, publishCircuitState, publishSignerStates, type SignerState } from '@signspool/shared/circuit-state';
import type { Config } from '@signspool/shared/config';
import { SignspoolError, toSignspoolError } from '@signspool/shared/errors';
import type { Logger } from '@signspool/shared/logger';
import type { Metrics } from '@signspool/shared/metrics';
import type { SigningIdentity } from '@signspool/shared/signers/identities';
import type { SignerRegistry } from '@signspool/shared/signers/registry';
import { createSigner, type SignerContext } from '../signers/index.js';
import type { DocumentResult, SignBatch, Signer, SignerStatus } from '../signer.js';
import { CircuitBreaker, type CircuitState } from './circuit-breaker.js';
import { BatchRunner, type BatchRunnerDeps, type HeldDocument } from './runner.js';

const CIRCUIT_STATES: readonly CircuitState[] = ['closed', 'open', 'half_open'];
const SEVERITY: Record<CircuitState, number> = { closed: 0, half_open: 1, open: 2 };
/** How often each lane's state is published, and how long an entry outlives a silent worker. */
const HEARTBEAT_MS = 5000;
const STATE_TTL_MS = 3 * HEARTBEAT_MS;
/** A name the registry does not know reloads it at most this often. */
const UNKNOWN_RELOAD_MS = 2000;

/** The signer of one identity, built on first use; remembers the identity's last error. */
class LaneSigner implements Signer {
  readonly name: string;
  private loading: Promise<Signer> | undefined;
  private real: Signer | undefined;
  lastError: { code: string; at: number } | undefined;

  constructor(
    private readonly signerName: string,
    private readonly identity: SigningIdentity | undefined,
    private readonly ctx: SignerContext,
    private readonly onLoaded: (s: SignerStatus) => void,
  ) {
    this.name = identity?.kind ?? 'removed';
  }

  private load(identity: SigningIdentity): Promise<Signer> {
    this.loading ??= (async () => {
      const s = await createSigner(identity, this.ctx);
      await s.start();
      this.real = s;
      this.onLoaded(s.status?.() ?? {});
      return s;
    })();
    return this.loading;
  }

  async start(): Promise<void> {
    if (this.identity) await this.load(this.identity);
  }

  private record(code: string): void {
    this.lastError = { code, at: Date.now() };
  }

  async signBatch(batch: SignBatch, signal: AbortSignal): Promise<DocumentResult[]> {
    if (!this.identity)
      throw new SignspoolError('SIGNER_REMOVED', {
        detail: `the signing identity ${this.signerName} was removed from the configuration before the document was signed`,
      });
    let signer: Signer;
    try {
      signer = await this.load(this.identity);
    } catch (err) {
      // A certificate or key that cannot be used: only this identity's documents fail, with why (file names, never secrets).
      this.record('SIGNER_FAILED');
      throw new SignspoolError('SIGNER_FAILED', { detail: `the signing identity ${this.signerName} cannot sign: ${(err as Error).message}`, cause: err });
    }
    try {
      const results = await signer.signBatch(batch, signal);
      const failed = results.find((r) => !r.ok);
      if (failed && !failed.ok) this.record(failed.error.code);
      return results;
    } catch (err) {
      if (!signal.aborted) this.record(toSignspoolError(err, 'UPSTREAM_NETWORK').code);
      throw err;
    }
  }

  status(): SignerStatus {
    return this.real?.status?.() ?? {};
  }

  async stop(): Promise<void> {
    await this.loading?.catch(() => undefined);
    await this.real?.stop();
  }
}

export class IdentityLane {
  inFlight = 0;
  retired = false;
  readonly breaker: CircuitBreaker;
  readonly runner: BatchRunner;
  readonly signer: LaneSigner;
  private stopping: Promise<void> | undefined;

  constructor(
    readonly name: string,
    /** undefined: removed from the configuration (its documents fail with SIGNER_REMOVED). */
    readonly identity: SigningIdentity | undefined,
    /** Batches of this identity run at once (its upstreamConcurrency, inside the global bound). */
    readonly concurrency: number,
    parts: { breaker: CircuitBreaker; signer: LaneSigner; runner: (signer: Signer, breaker: CircuitBreaker) => BatchRunner },
  ) {
    this.breaker = parts.breaker;
    this.signer = parts.signer;
    this.runner = parts.runner(this.signer, this.breaker);
  }

  get hasRoom(): boolean {
    return this.inFlight < this.concurrency;
  }

  state(): SignerState {
    const s = this.signer.status();
    return {
      circuit: this.breaker.state,
      ...(s.tokenValidUntil === undefined ? {} : { tokenValidUntil: s.tokenValidUntil }),
      ...(this.signer.lastError ? { lastError: this.signer.lastError } : {}),
      ...(s.certificate ? { certificate: s.certificate } : {}),
    };
  }

  /** Stops the signer and breaker once no batch runs (idempotent). */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.breaker.stop();
      await this.signer.stop();
    })();
    return this.stopping;
  }
}

export interface IdentityLanesDeps {
  registry: SignerRegistry;
  /** Everything a batch runner needs but its identity, signer and breaker. */
  runner: Omit<BatchRunnerDeps, 'identity' | 'signer' | 'breaker'>;
  signerContext: SignerContext;
  upstream: Config['upstream'];
  redis: Redis;
  prefix: string;
  metrics: Metrics;
  logger: Logger;
  /** A lane's circuit changed (the worker wakes its puller, re-dispatches). */
  onCircuitChange: () => void;
}

export class IdentityLanes {
  private readonly lanes = new Map<string, IdentityLane>();
  /** Retired lanes still running batches. */
  private readonly retiring = new Set<IdentityLane>();
  private unsubscribe: (() => void) | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private lastWorst: CircuitState = 'closed';
  private unknownReload: { at: number; done: Promise<unknown> } | undefined;
  private stopped = false;

  constructor(private readonly deps: IdentityLanesDeps) {}

  start(): void {
    this.unsubscribe = this.deps.registry.onChange((next, _previous, changed) => this.onReload(next.names(), changed));
    this.heartbeat = setInterval(() => void this.publish(), HEARTBEAT_MS);
    this.heartbeat.unref();
    this.showCircuit();
  }

  /** The lane of `name`, built on first use (a removed or unknown name gets a lane that fails its documents). */
  lane(name: string): IdentityLane {
    let lane = this.lanes.get(name);
    if (!lane) {
      lane = this.build(name, this.deps.registry.identities.get(name));
      this.lanes.set(name, lane);
    }
    return lane;
  }

  /** The lane of `name` if one was built. */
  peek(name: string): IdentityLane | undefined {
    return this.lanes.get(name);
  }

  /** Whether the registry knows `name`; if not, reloads it once (rate-limited) and asks again. */
  async known(name: string): Promise<boolean> {
    if (this.deps.registry.identities.get(name)) return true;
    const now = Date.now();
    if (!this.unknownReload || now - this.unknownReload.at > UNKNOWN_RELOAD_MS) {
      this.unknownReload = { at: now, done: this.deps.registry.reload('unknown-identity') };
    }
    await this.unknownReload.done;
    return this.deps.registry.identities.get(name) !== undefined;
  }

  /** True when every identity of the configuration has a lane whose circuit is blocked (open, or probing): nothing to pull for. */
  allBlocked(): boolean {
    const names = this.deps.registry.identities.names();
    return names.length > 0 && names.every((n) => this.lanes.get(n)?.breaker.blocked === true);
  }

  /** The worst circuit state over the lanes. */
  worst(): CircuitState {
    let worst: CircuitState = 'closed';
    for (const l of this.lanes.values()) if (SEVERITY[l.breaker.state] > SEVERITY[worst]) worst = l.breaker.state;
    return worst;
  }

  /** Each lane's state (readiness detail and the admin view). */
  states(): Record<string, SignerState> {
    const out: Record<string, SignerState> = {};
    for (const [name, lane] of [...this.lanes].sort(([a], [b]) => a.localeCompare(b))) if (lane.identity) out[name] = lane.state();
    return out;
  }

  /** Runs a batch on its lane; the lane counts it in flight. */
  async run(lane: IdentityLane, items: HeldDocument[]): Promise<void> {
    lane.inFlight++;
    try {
      await lane.runner.run(items);
    } finally {
      lane.inFlight--;
      if (lane.retired && lane.inFlight === 0) {
        this.retiring.delete(lane);
        await lane.stop().catch((err: unknown) => this.deps.logger.warn({ err, signer: lane.name }, 'could not stop a retired signer'));
      }
    }
  }

  private build(name: string, identity: SigningIdentity | undefined): IdentityLane {
    const { metrics, upstream, logger } = this.deps;
    const breaker = new CircuitBreaker({
      threshold: upstream.breakerThreshold,
      cooldownMs: upstream.breakerCooldownMs,
      onStateChange: (state) => {
        if (this.lanes.get(name)?.breaker !== breaker) return;
        logger.warn(
          { signer: name, circuit: state },
          state === 'open' ? "signer's circuit open: its documents wait in the queue until the cool-down ends" : `signer's circuit ${state}`,
        );
        this.showCircuit();
        void this.publish();
        this.deps.onCircuitChange();
      },
    });
    const signer = new LaneSigner(name, identity, this.deps.signerContext, (s) => {
      if (s.certificate) metrics.signerCertificateExpiry.set({ signer: name }, s.certificate.notAfter / 1000);
    });
    const lane = new IdentityLane(name, identity, identity?.limits.upstreamConcurrency ?? 1, {
      breaker,
      signer,
      runner: (s, b) => new BatchRunner({ ...this.deps.runner, identity: name, signer: s, breaker: b }),
    });
    if (identity) for (const s of CIRCUIT_STATES) metrics.signerCircuit.set({ signer: name, state: s }, s === 'closed' ? 1 : 0);
    return lane;
  }

  private onReload(names: readonly string[], changed: readonly string[]): void {
    const removed: string[] = [];
    for (const name of changed) {
      const lane = this.lanes.get(name);
      if (!names.includes(name)) removed.push(name);
      if (!lane) continue;
      // In-flight batches finish with what they started; the next batch builds a fresh lane.
      this.lanes.delete(name);
      lane.retired = true;
      if (lane.inFlight === 0) void lane.stop().catch(() => undefined);
      else this.retiring.add(lane);
    }
    for (const name of removed) {
      this.deps.metrics.signerCircuit.remove({ signer: name, state: 'closed' });
      this.deps.metrics.signerCircuit.remove({ signer: name, state: 'open' });
      this.deps.metrics.signerCircuit.remove({ signer: name, state: 'half_open' });
      this.deps.metrics.signerCertificateExpiry.remove({ signer: name });
    }
    if (removed.length > 0) void forgetSignerStates(this.deps.redis, this.deps.prefix, removed);
    this.deps.logger.info({ changed, removed }, 'signing identities changed: the next batches use the new settings');
    this.showCircuit();
    this.deps.onCircuitChange();
  }

  /** Metrics: each lane's circuit, and the worst of them in signspool_upstream_circuit. */
  private showCircuit(): void {
    const { metrics } = this.deps;
    for (const [name, lane] of this.lanes) {
      if (!lane.identity) continue;
      for (const s of CIRCUIT_STATES) metrics.signerCircuit.set({ signer: name, state: s }, s === lane.breaker.state ? 1 : 0);
    }
    const worst = this.worst();
    for (const s of CIRCUIT_STATES) metrics.upstreamCircuit.set({ state: s }, s === worst ? 1 : 0);
    metrics.workerPaused.set({ reason: 'circuit_open' }, this.allBlocked() ? 1 : 0);
    if (worst !== this.lastWorst) {
      this.lastWorst = worst;
      void this.publishWorst();
    }
  }

  /** GET /v1/admin/stats: this worker's worst circuit, listed until it closes or the worker is gone (renewed by the heartbeat). */
  private publishWorst(): Promise<void> {
    return publishCircuitState(this.deps.redis, this.deps.prefix, this.lastWorst, STATE_TTL_MS).catch(() => undefined);
  }

  /** Publishes every lane's state and the worst circuit (a heartbeat; never throws). */
  async publish(): Promise<void> {
    if (this.stopped) return;
    await publishSignerStates(this.deps.redis, this.deps.prefix, this.states(), STATE_TTL_MS);
    if (this.lastWorst !== 'closed') await this.publishWorst();
  }

  /** Stops every lane (after the worker drained its batches) and withdraws this worker's states. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.unsubscribe?.();
    clearInterval(this.heartbeat);
    const all = [...this.lanes.values(), ...this.retiring];
    await Promise.all(all.map((l) => l.stop().catch(() => undefined)));
    await forgetSignerStates(this.deps.redis, this.deps.prefix, [...this.lanes.keys()]);
    await publishCircuitState(this.deps.redis, this.deps.prefix, 'closed', 0).catch(() => undefined);
  }
}
