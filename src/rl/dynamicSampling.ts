/**
 * Dynamic sampling (DAPO): a group whose completions all got the same reward has advantage 0
 * everywhere and teaches nothing, so it is dropped and more prompts are sampled in its place.
 */
import { isZeroStd } from "./advantages.ts";
import { groupsOf, std } from "./stats.ts";

/** Indices of the groups (prompt-major rewards, `groupSize` each) whose rewards differ. */
export function informativeGroups(rewards: readonly number[], groupSize: number): number[] {
  const kept: number[] = [];
  groupsOf(rewards, groupSize).forEach((group, index) => {
    if (!isZeroStd(std(group))) kept.push(index);
  });
  return kept;
}

/**
 * Adds the informative groups of one sampling round to those kept so far, up to `wanted`
 * groups. Groups are opaque here: whatever the trainer keeps per group.
 */
export function fillBatch<G>(
  kept: readonly G[],
  round: readonly G[],
  roundRewards: readonly number[],
  groupSize: number,
  wanted: number,
): G[] {
  const next = [...kept];
  for (const index of informativeGroups(roundRewards, groupSize)) {
    if (next.length >= wanted) break;
    next.push(round[index] as G);
  }
  return next;
}
