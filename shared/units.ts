/** Durations and sizes as people write them in settings (environment variables, SIGNERS_FILE). */

const MiB = 1024 * 1024;

/** Durations: plain milliseconds, or a number with ms/s/m/h/d. */
export const parseDuration = (raw: string): number | undefined => {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(raw);
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = m[2] ?? 'ms';
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[unit] ?? 1;
  return Math.round(n * factor);
};

/** Sizes: plain bytes, or a number with KB/MB/GB (decimal) or KiB/MiB/GiB (binary). */
export const parseBytes = (raw: string): number | undefined => {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|kib|mib|gib)?\s*$/i.exec(raw);
  if (!m) return undefined;
  const factors: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: MiB, gib: 1024 * MiB };
  return Math.round(Number(m[1]) * (factors[(m[2] ?? 'b').toLowerCase()] ?? 1));
};
