import { describe, expect, it } from "vitest";
import { stepMetrics, type SampledCompletion, type TrainStepReport } from "./metrics.ts";

const completions: SampledCompletion[] = [
  { rewards: [1, 1, 20], length: 50, truncated: false, outcome: "success" },
  { rewards: [-2, -1, 0], length: 200, truncated: true, outcome: null },
  { rewards: [1, 1, 2], length: 80, truncated: false, outcome: "failed" },
  { rewards: [1, 1, 2], length: 70, truncated: false, outcome: "failed" },
];

const update = (lr: number, kl: number): TrainStepReport => ({
  loss: 0.5,
  kl,
  entropy: 1.25,
  clip_ratio: { low_mean: 0, high_mean: 0.5, region_mean: 0.25 },
  grad_norm: 2,
  learning_rate: lr,
});

describe("stepMetrics", () => {
  const metrics = stepMetrics({
    functionNames: ["function_works", "no_cheating", "strategy_succeeds"],
    weights: [1, 1, 1],
    groupSize: 2,
    scale: "group",
    completions,
    updates: [update(1e-5, 0.01), update(2e-5, 0.03)],
    seconds: { generate: 3, score: 1.5, train: 2 },
    samplingRounds: 1,
    groupsTrained: 2,
  });

  it("reports TRL's completion metrics", () => {
    expect(metrics["completions/mean_length"]).toBe(100);
    expect(metrics["completions/min_length"]).toBe(50);
    expect(metrics["completions/max_length"]).toBe(200);
    expect(metrics["completions/clipped_ratio"]).toBe(0.25);
    expect(metrics["completions/mean_terminated_length"]).toBe(200 / 3);
  });

  it("reports each reward function and the total", () => {
    // function_works: [1, -2, 1, 1] -> mean 0.25, unbiased std 1.5.
    expect(metrics["rewards/function_works/mean"]).toBe(0.25);
    expect(metrics["rewards/function_works/std"]).toBeCloseTo(1.5, 12);
    expect(metrics["rewards/strategy_succeeds/mean"]).toBe(6);
    // Totals [22, -3, 4, 4]: mean 6.75; group stds [sqrt(312.5), 0] -> mean sqrt(312.5) / 2.
    expect(metrics.reward).toBe(6.75);
    expect(metrics.reward_std).toBeCloseTo(Math.sqrt(312.5) / 2, 12);
    expect(metrics.frac_reward_zero_std).toBe(0.5);
  });

  it("averages the updates and keeps the last learning rate", () => {
    expect(metrics.kl).toBeCloseTo(0.02, 12);
    expect(metrics.entropy).toBe(1.25);
    expect(metrics["clip_ratio/high_mean"]).toBe(0.5);
    expect(metrics.learning_rate).toBe(2e-5);
    expect(metrics.grad_norm).toBe(2);
  });

  it("counts outcomes and times each phase", () => {
    expect(metrics["outcomes/success"]).toBe(1);
    expect(metrics["outcomes/failed"]).toBe(2);
    expect(metrics["outcomes/none"]).toBe(1);
    expect(metrics["time/generate_s"]).toBe(3);
    expect(metrics["sampling/groups_trained"]).toBe(2);
  });

  it("reports the step's peak GPU memory, the largest of its updates', only on a GPU", () => {
    expect(metrics["memory/peak_reserved_gib"]).toBeUndefined(); // these updates ran on a CPU
    const gib = 1024 ** 3;
    const onGpu = stepMetrics({
      functionNames: ["function_works"],
      weights: [1],
      groupSize: 2,
      scale: "none",
      completions: completions.map((c) => ({ ...c, rewards: [1] })),
      // num_iterations 2: the first report's peaks cover generation too, the second's its update
      updates: [
        { ...update(1e-5, 0), memory: { peak: 13 * gib, peak_reserved: 14.5 * gib } },
        { ...update(1e-5, 0), memory: { peak: 13.5 * gib, peak_reserved: 14 * gib } },
      ],
      seconds: { generate: 1, score: 1, train: 1 },
      samplingRounds: 1,
      groupsTrained: 2,
    });
    expect(onGpu["memory/peak_allocated_gib"]).toBe(13.5);
    expect(onGpu["memory/peak_reserved_gib"]).toBe(14.5);
  });

  it("leaves training metrics out when no update ran", () => {
    const skipped = stepMetrics({
      functionNames: ["function_works"],
      weights: [1],
      groupSize: 2,
      scale: "none",
      completions: completions.slice(2).map((c) => ({ ...c, rewards: [1] })),
      updates: [],
      seconds: { generate: 1, score: 1, train: 0 },
      samplingRounds: 3,
      groupsTrained: 0,
    });
    expect(skipped.kl).toBeUndefined();
    expect(skipped.frac_reward_zero_std).toBe(1);
  });
});
