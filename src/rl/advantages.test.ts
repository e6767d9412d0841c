import { describe, expect, it } from "vitest";
import { groupAdvantages, totalRewards } from "./advantages.ts";
import { informativeGroups, fillBatch } from "./dynamicSampling.ts";
import { mean, std } from "./stats.ts";

// Rewards of two groups of two: [1, 3] (mean 2, unbiased std sqrt(2)) and [2, 2] (std 0).
// The whole batch has mean 2 and unbiased std sqrt(2/3).
const rewards = [1, 3, 2, 2];

describe("stats", () => {
  it("uses the unbiased std, like torch.std", () => {
    expect(mean([1, 2, 3, 4])).toBe(2.5);
    expect(std([1, 3])).toBeCloseTo(Math.SQRT2, 12);
    expect(std([2, 4, 4, 4, 5, 5, 7, 9])).toBeCloseTo(2.138089935, 9);
    expect(std([5])).toBeNaN();
  });
});

describe("groupAdvantages", () => {
  it("scales by the group's std", () => {
    const { advantages, groupMeans, stds, zeroStdGroups } = groupAdvantages(rewards, 2, "group");
    // (1 - 2) / (sqrt(2) + 1e-4) = -0.70705678...
    expect(advantages[0]).toBeCloseTo(-0.7070567847, 9);
    expect(advantages[1]).toBeCloseTo(0.7070567847, 9);
    expect(advantages.slice(2)).toEqual([0, 0]);
    expect(groupMeans).toEqual([2, 2, 2, 2]);
    expect(stds[0]).toBeCloseTo(Math.SQRT2, 12);
    expect(stds[2]).toBe(0);
    expect(zeroStdGroups).toEqual([false, true]);
  });

  it("scales by the batch's std", () => {
    const { advantages, stds, zeroStdGroups } = groupAdvantages(rewards, 2, "batch");
    // (1 - 2) / (sqrt(2/3) + 1e-4) = -1.22459488...
    expect(advantages[0]).toBeCloseTo(-1.2245948898, 9);
    expect(advantages[1]).toBeCloseTo(1.2245948898, 9);
    expect(advantages.slice(2)).toEqual([0, 0]);
    expect(stds[3]).toBeCloseTo(Math.sqrt(2 / 3), 12);
    // Which groups carry no signal does not depend on the scaling.
    expect(zeroStdGroups).toEqual([false, true]);
  });

  it("only centres with scale none", () => {
    const { advantages } = groupAdvantages([1, 3, -20, 1], 2, "none");
    expect(advantages).toEqual([-1, 1, -10.5, 10.5]);
  });

  it("handles groups larger than two", () => {
    // Group [3, 1, -2, 0]: mean 0.5, unbiased std 2.0816659994661326.
    const { advantages } = groupAdvantages([3, 1, -2, 0], 4, "group");
    expect(advantages[0]).toBeCloseTo(2.5 / (2.0816659994661326 + 1e-4), 12);
    expect(advantages[2]).toBeCloseTo(-2.5 / (2.0816659994661326 + 1e-4), 12);
    expect(advantages.reduce((a, b) => a + b, 0)).toBeCloseTo(0, 12);
  });

  it("refuses groups of one and ragged batches", () => {
    expect(() => groupAdvantages([1, 2], 1, "group")).toThrow(/at least 2/);
    expect(() => groupAdvantages([1, 2, 3], 2, "group")).toThrow(/groups of 2/);
  });
});

describe("totalRewards", () => {
  it("weights each function's reward", () => {
    const rows = [
      [1, 1, 20],
      [-2, -1, 0],
    ];
    expect(totalRewards(rows, [1, 1, 1])).toEqual([22, -3]);
    expect(totalRewards(rows, [0.5, 2, 0.1])).toEqual([0.5 + 2 + 2, -1 - 2 + 0]);
    expect(() => totalRewards([[1, 2]], [1])).toThrow(/expected 1 rewards/);
  });
});

describe("dynamic sampling", () => {
  it("keeps only the groups whose rewards differ", () => {
    expect(informativeGroups([1, 3, 2, 2, 0, 0.5], 2)).toEqual([0, 2]);
    expect(informativeGroups([2, 2, 2, 2], 2)).toEqual([]);
  });

  it("fills the batch up to the number of groups wanted", () => {
    const first = fillBatch([], ["a", "b", "c"], [1, 1, 0, 2, 5, 6], 2, 3);
    expect(first).toEqual(["b", "c"]);
    const second = fillBatch(first, ["d", "e"], [0, 1, 3, 4], 2, 3);
    expect(second).toEqual(["b", "c", "d"]);
  });
});
