/**
 * GRPO advantages, as TRL's GRPOTrainer computes them.
 *
 * Rewards arrive prompt-major: the `groupSize` completions of prompt 0, then prompt 1, ...
 * Each completion's advantage is its reward minus its group's mean, divided by a standard
 * deviation chosen by `scale`:
 * - `group`: the group's own std (the GRPO paper, TRL's default),
 * - `batch`: the std of every reward in the batch,
 * - `none`:  not divided (Dr. GRPO).
 * A small epsilon (1e-4, TRL's) keeps groups with equal rewards at advantage 0.
 */
import { groupsOf, mean, std } from "./stats.ts";

export type ScaleRewards = "group" | "batch" | "none";

const STD_EPSILON = 1e-4;

export interface GroupAdvantages {
  /** One advantage per completion, in the input order. */
  advantages: number[];
  /** Per completion: its group's mean reward. */
  groupMeans: number[];
  /** Per completion: the std used to scale it (the group's for `group`/`none`). */
  stds: number[];
  /** Per group: whether all its rewards are equal (std close to 0). */
  zeroStdGroups: boolean[];
}

/** Close to zero the way `torch.isclose(x, 0)` decides it (atol 1e-8). */
export function isZeroStd(value: number): boolean {
  return Math.abs(value) <= 1e-8;
}

export function groupAdvantages(
  rewards: readonly number[],
  groupSize: number,
  scale: ScaleRewards,
): GroupAdvantages {
  if (groupSize < 2)
    throw new Error(`GRPO needs at least 2 completions per group, got ${groupSize}`);
  const groups = groupsOf(rewards, groupSize);
  const batchStd = std(rewards);
  const advantages: number[] = [];
  const groupMeans: number[] = [];
  const stds: number[] = [];
  const zeroStdGroups: boolean[] = [];
  for (const group of groups) {
    const groupMean = mean(group);
    const groupStd = std(group);
    zeroStdGroups.push(isZeroStd(groupStd));
    const scaleStd = scale === "batch" ? batchStd : groupStd;
    for (const reward of group) {
      const centered = reward - groupMean;
      advantages.push(scale === "none" ? centered : centered / (scaleStd + STD_EPSILON));
      groupMeans.push(groupMean);
      stds.push(scaleStd);
    }
  }
  return { advantages, groupMeans, stds, zeroStdGroups };
}

/** The weighted sum of each completion's rewards: `rewardsPerFunction[i][f] * weights[f]`. */
export function totalRewards(
  rewardsPerFunction: readonly (readonly number[])[],
  weights: readonly number[],
): number[] {
  return rewardsPerFunction.map((row) => {
    if (row.length !== weights.length) {
      throw new Error(`expected ${weights.length} rewards per completion, got ${row.length}`);
    }
    let total = 0;
    row.forEach((value, f) => (total += value * (weights[f] as number)));
    return total;
  });
}
