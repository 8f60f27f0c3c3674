/**
 * Admission of uploads, per tenant: UPLOAD_CONCURRENCY request bodies are read at once, one
 * tenant's uploads hold at most UPLOAD_TENANT_SHARE of those slots, and a tenant with no upload
 * being read is always admitted at once, even when every slot is taken: no group of tenants, however
 * many and however slow their uploads, can make a newcomer wait (docs/security.md argues the
 * choice). Those first uploads are at most one per tenant, and tenants are bounded by the
 * connection limits (api/http/connection-limits.ts). The others wait with their bytes left in the
 * kernel's socket buffers (TCP pushes back on the client), at most UPLOAD_QUEUE_TIMEOUT (then 503
 * with Retry-After, gate.ts). When a slot frees, the waiting tenant with the fewest uploads being
 * read goes first, ties in round-robin order (the tenant served longest ago), each tenant's uploads
 * in arrival order.
 *
 * Reading a few uploads at a time rather than all at once keeps the api at its best rate under a
 * burst: hundreds of half-read bodies sharing the CPU are each slow, and buffers and GC grow with
 * their number.
 */

interface TenantState {
  active: number;
  waiting: (() => void)[];
  /** Admission sequence number of its last upload (round-robin among equals). */
  lastServed: number;
}

export class UploadAdmission {
  private active = 0;
  private waitingCount = 0;
  private served = 0;
  private readonly tenants = new Map<string, TenantState>();
  /** Slots one tenant may hold. */
  readonly perTenant: number;

  constructor(
    private readonly limit: number,
    /** Share of the slots one tenant may hold (0 < share <= 1; at least one slot). */
    share = 1,
    /** Told the counts after every change (the api's `signspool_uploads` gauge). */
    private readonly onChange: (counts: { active: number; waiting: number }) => void = () => undefined,
  ) {
    this.perTenant = Math.max(1, Math.min(limit, Math.floor(limit * share)));
    this.changed();
  }

  /** Uploads being read now, and waiting for their turn (metrics, tests). */
  get counts(): { active: number; waiting: number } {
    return { active: this.active, waiting: this.waitingCount };
  }

  /** Uploads of one tenant being read and waiting. */
  tenantCounts(tenant: string): { active: number; waiting: number } {
    const t = this.tenants.get(tenant);
    return { active: t?.active ?? 0, waiting: t?.waiting.length ?? 0 };
  }

  /**
   * Resolves with a release function once the upload may be read. `onGone` receives a cancel
   * function to call when the client goes away: a waiting upload then leaves the queue and
   * resolves with undefined (after admission, cancel does nothing).
   */
  admit(tenant: string, onGone: (cancel: () => void) => void): Promise<(() => void) | undefined> {
    const t = this.tenant(tenant);
    if (this.mayStart(t) && t.waiting.length === 0) {
      this.start(t);
      this.changed();
      return Promise.resolve(this.releaser(tenant, t));
    }
    return new Promise((resolve) => {
      const turn = (): void => {
        this.start(t);
        resolve(this.releaser(tenant, t));
      };
      t.waiting.push(turn);
      this.waitingCount++;
      this.changed();
      onGone(() => {
        const i = t.waiting.indexOf(turn);
        if (i === -1) return;
        t.waiting.splice(i, 1);
        this.waitingCount--;
        this.forget(tenant, t);
        this.changed();
        resolve(undefined);
      });
    });
  }

  /** A tenant with nothing being read always may (its first upload); others within the limit and their share. */
  private mayStart(t: TenantState): boolean {
    return t.active === 0 || (this.active < this.limit && t.active < this.perTenant);
  }

  private tenant(name: string): TenantState {
    let t = this.tenants.get(name);
    if (!t) {
      t = { active: 0, waiting: [], lastServed: -1 };
      this.tenants.set(name, t);
    }
    return t;
  }

  private start(t: TenantState): void {
    this.active++;
    t.active++;
    t.lastServed = this.served++;
  }

  private forget(name: string, t: TenantState): void {
    if (t.active === 0 && t.waiting.length === 0) this.tenants.delete(name);
  }

  /** A release that works once. */
  private releaser(name: string, t: TenantState): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.active--;
      t.active--;
      this.forget(name, t);
      this.admitNext();
      this.changed();
    };
  }

  /** Fills free slots: fewest uploads being read first, then the tenant served longest ago. */
  private admitNext(): void {
    while (this.waitingCount > 0) {
      let next: TenantState | undefined;
      for (const t of this.tenants.values()) {
        if (t.waiting.length === 0 || !this.mayStart(t)) continue;
        if (!next || t.active < next.active || (t.active === next.active && t.lastServed < next.lastServed)) next = t;
      }
      const turn = next?.waiting.shift();
      if (!turn) return;
      this.waitingCount--;
      turn();
    }
  }

  private changed(): void {
    this.onChange(this.counts);
  }
}
