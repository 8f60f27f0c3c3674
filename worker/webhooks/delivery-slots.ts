/**
 * Fair shares of a worker's webhook slots (WEBHOOK_CONCURRENCY), per tenant and, within a
 * tenant, per endpoint (its URL's origin). A request in flight cannot be taken back, so a hung
 * endpoint would keep every slot it got until its timeout; shares therefore always leave room for
 * a newcomer: with n tenants sending (the asking one included), a tenant may hold
 * max(1, ⌊slots / (n + 1)⌋), and with m of its endpoints sending, an endpoint may hold
 * max(1, ⌊tenant share / (m + 1)⌋). A delivery refused a slot is parked (the dispatcher delays its
 * job without counting an attempt) and woken, oldest first, when a slot it could take frees up.
 */

/** A held slot: release it exactly once when the attempt ends. */
export interface DeliverySlot {
  release(): void;
}

interface ParkedQueue {
  tenant: string;
  endpoint: string;
  ids: string[];
}

const share = (slots: number, holders: number): number => Math.max(1, Math.floor(slots / (holders + 1)));

export class DeliverySlots {
  /** tenant → endpoint → deliveries in flight. */
  private readonly inFlight = new Map<string, Map<string, number>>();
  private total = 0;
  /** endpoint key → its parked deliveries (job ids), oldest first; keys in the order they first parked. */
  private readonly parked = new Map<string, ParkedQueue>();
  private readonly parkedKey = new Map<string, string>();

  constructor(readonly slots: number) {}

  /** How many of `tenant`'s deliveries may be in flight now (its share). */
  tenantShare(tenant: string): number {
    const others = [...this.inFlight.keys()].filter((t) => t !== tenant).length;
    return share(this.slots, others + 1);
  }

  /** How many deliveries to `endpoint` of `tenant` may be in flight now. */
  endpointShare(tenant: string, endpoint: string): number {
    const mine = this.inFlight.get(tenant);
    const others = mine ? [...mine.keys()].filter((e) => e !== endpoint).length : 0;
    return share(this.tenantShare(tenant), others + 1);
  }

  private admits(tenant: string, endpoint: string): boolean {
    if (this.total >= this.slots) return false;
    const mine = this.inFlight.get(tenant);
    const held = mine ? [...mine.values()].reduce((a, b) => a + b, 0) : 0;
    if (held >= this.tenantShare(tenant)) return false;
    return (mine?.get(endpoint) ?? 0) < this.endpointShare(tenant, endpoint);
  }

  /** A slot for a delivery to `endpoint` of `tenant`, or undefined when it is over its share. */
  tryAcquire(tenant: string, endpoint: string): DeliverySlot | undefined {
    if (!this.admits(tenant, endpoint)) return undefined;
    const mine = this.inFlight.get(tenant) ?? new Map<string, number>();
    this.inFlight.set(tenant, mine);
    mine.set(endpoint, (mine.get(endpoint) ?? 0) + 1);
    this.total += 1;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.total -= 1;
        const n = (mine.get(endpoint) ?? 1) - 1;
        if (n > 0) mine.set(endpoint, n);
        else mine.delete(endpoint);
        if (mine.size === 0) this.inFlight.delete(tenant);
      },
    };
  }

  /** Parks a refused delivery (its job id); returns how many of the same endpoint were parked before it. */
  park(tenant: string, endpoint: string, id: string): number {
    this.unpark(id);
    const key = `${tenant}\n${endpoint}`;
    const q = this.parked.get(key) ?? { tenant, endpoint, ids: [] };
    this.parked.set(key, q);
    q.ids.push(id);
    this.parkedKey.set(id, key);
    return q.ids.length - 1;
  }

  /**
   * Takes out the parked deliveries that would now get a slot: at most one per endpoint and no more
   * than the free slots, the endpoints in turn (each one's oldest first).
   */
  wake(): string[] {
    const out: string[] = [];
    for (const key of [...this.parked.keys()]) {
      const q = this.parked.get(key);
      if (!q) continue;
      if (this.total + out.length >= this.slots) break;
      const slot = this.tryAcquire(q.tenant, q.endpoint);
      if (!slot) continue;
      slot.release();
      const id = q.ids.shift();
      if (id !== undefined) {
        out.push(id);
        this.parkedKey.delete(id);
      }
      // Re-inserted at the end: the next wake serves the other endpoints first.
      this.parked.delete(key);
      if (q.ids.length > 0) this.parked.set(key, q);
    }
    return out;
  }

  /**
   * Parks a refused delivery while `delay` moves its job out of the way (a Redis round trip), so
   * that a slot freed meanwhile wakes it; true when one did: its job was not delayed yet when the
   * wake came, so the caller promotes it now.
   */
  async parkDuring(tenant: string, endpoint: string, id: string, delay: () => Promise<unknown>): Promise<boolean> {
    this.park(tenant, endpoint, id);
    try {
      await delay();
    } catch (err) {
      this.unpark(id);
      throw err;
    }
    return !this.parkedKey.has(id);
  }

  /** How many deliveries to `endpoint` of `tenant` are parked. */
  parkedAt(tenant: string, endpoint: string): number {
    return this.parked.get(`${tenant}\n${endpoint}`)?.ids.length ?? 0;
  }

  /** Forgets a parked delivery (it came back by its own delay, or was woken). */
  unpark(id: string): void {
    const key = this.parkedKey.get(id);
    if (key === undefined) return;
    this.parkedKey.delete(id);
    const q = this.parked.get(key);
    if (!q) return;
    q.ids = q.ids.filter((x) => x !== id);
    if (q.ids.length === 0) this.parked.delete(key);
  }

  get parkedCount(): number {
    return this.parkedKey.size;
  }
}
