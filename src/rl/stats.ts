/**
 * Small statistics shared by the GRPO math: mean and the unbiased (Bessel-corrected) standard
 * deviation, as `torch.std` computes them, so our figures read like TRL's.
 */

export function mean(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}

/** Unbiased standard deviation (divides by n - 1); NaN for fewer than two values. */
export function std(values: readonly number[]): number {
  if (values.length < 2) return Number.NaN;
  const m = mean(values);
  let squares = 0;
  for (const v of values) squares += (v - m) ** 2;
  return Math.sqrt(squares / (values.length - 1));
}

/** Splits a flat prompt-major list into consecutive groups of `size`. */
export function groupsOf<T>(values: readonly T[], size: number): T[][] {
  if (!Number.isInteger(size) || size < 1 || values.length % size !== 0) {
    throw new Error(`cannot split ${values.length} values into groups of ${size}`);
  }
  const groups: T[][] = [];
  for (let i = 0; i < values.length; i += size) groups.push(values.slice(i, i + size));
  return groups;
}
