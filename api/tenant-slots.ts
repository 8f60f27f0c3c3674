/**
 * A per-tenant count of something held (long polls, connections) with a cap: `take` returns a
 * release function, or undefined when the tenant already holds `max`. A cap of 0 means no cap.
 * Tenants holding nothing are forgotten, so the map stays as small as the set of active tenants.
 */
export class TenantSlots {
  private readonly held = new Map<string, number>();

  constructor(private readonly max: number) {}

  /** What `tenant` holds now. */
  count(tenant: string): number {
    return this.held.get(tenant) ?? 0;
  }

  /** Takes one for `tenant`; the release works once. Undefined when the tenant is at its cap. */
  take(tenant: string): (() => void) | undefined {
    const n = this.count(tenant);
    if (this.max > 0 && n >= this.max) return undefined;
    this.held.set(tenant, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = this.count(tenant) - 1;
      if (left <= 0) this.held.delete(tenant);
      else this.held.set(tenant, left);
    };
  }
}
