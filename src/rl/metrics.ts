/**
 * One step's metrics under TRL's names, so a GRPO user reads them as usual, plus what TRL has
 * no name for: outcome counts (`outcomes/<outcome>`), sampling rounds, seconds per phase and,
 * on a GPU, the step's peak memory (`memory/peak_allocated_gib`, `memory/peak_reserved_gib`).
 */
import { groupAdvantages, totalRewards, type ScaleRewards } from "./advantages.ts";
import { mean, std } from "./stats.ts";

export interface SampledCompletion {
  /** One value per reward function, in `functionNames` order. */
  rewards: readonly number[];
  /** Completion length in tokens. */
  length: number;
  /** Whether it hit `max_completion_length` without a stop token. */
  truncated: boolean;
  /** The strategy's game outcome, or null when nothing ran (no function, rejected, ...). */
  outcome: string | null;
}

/** What the engine's `train_step` reports (engine/README.md), the fields we log. */
export interface TrainStepReport {
  loss: number;
  kl: number;
  entropy: number;
  clip_ratio: { low_mean: number; high_mean: number; region_mean: number };
  grad_norm: number;
  learning_rate: number;
  /** GPU bytes at the peak since the previous report (absent without a GPU). */
  memory?: { peak?: number | undefined; peak_reserved?: number | undefined } | undefined;
}

const GIB = 1024 ** 3;

export interface StepInput {
  functionNames: readonly string[];
  weights: readonly number[];
  groupSize: number;
  scale: ScaleRewards;
  /** Every completion sampled this step (all dynamic-sampling rounds), prompt-major. */
  completions: readonly SampledCompletion[];
  /** One report per optimizer update this step (`num_iterations` of them; none if skipped). */
  updates: readonly TrainStepReport[];
  seconds: { generate: number; score: number; train: number };
  samplingRounds: number;
  groupsTrained: number;
}

export type StepMetrics = Record<string, number>;

function minOrZero(values: readonly number[]): number {
  return values.length === 0 ? 0 : Math.min(...values);
}
function maxOrZero(values: readonly number[]): number {
  return values.length === 0 ? 0 : Math.max(...values);
}
function meanOrZero(values: readonly number[]): number {
  return values.length === 0 ? 0 : mean(values);
}

export function stepMetrics(input: StepInput): StepMetrics {
  const { completions, functionNames } = input;
  const metrics: StepMetrics = {};

  const lengths = completions.map((c) => c.length);
  const terminated = completions.filter((c) => !c.truncated).map((c) => c.length);
  metrics["completions/mean_length"] = meanOrZero(lengths);
  metrics["completions/min_length"] = minOrZero(lengths);
  metrics["completions/max_length"] = maxOrZero(lengths);
  metrics["completions/clipped_ratio"] =
    completions.length === 0 ? 0 : 1 - terminated.length / completions.length;
  metrics["completions/mean_terminated_length"] = meanOrZero(terminated);
  metrics["completions/min_terminated_length"] = minOrZero(terminated);
  metrics["completions/max_terminated_length"] = maxOrZero(terminated);

  const perFunction = completions.map((c) => c.rewards);
  functionNames.forEach((name, f) => {
    const values = perFunction.map((row) => row[f] as number);
    metrics[`rewards/${name}/mean`] = meanOrZero(values);
    metrics[`rewards/${name}/std`] = values.length < 2 ? 0 : std(values);
  });

  const totals = totalRewards(perFunction, input.weights);
  if (totals.length > 0) {
    const { stds, zeroStdGroups } = groupAdvantages(totals, input.groupSize, input.scale);
    metrics.reward = mean(totals);
    metrics.reward_std = mean(stds);
    metrics.frac_reward_zero_std = zeroStdGroups.filter(Boolean).length / zeroStdGroups.length;
  }

  const updates = input.updates;
  if (updates.length > 0) {
    const avg = (pick: (u: TrainStepReport) => number) => mean(updates.map(pick));
    metrics.loss = avg((u) => u.loss);
    metrics.kl = avg((u) => u.kl);
    metrics.entropy = avg((u) => u.entropy);
    metrics["clip_ratio/low_mean"] = avg((u) => u.clip_ratio.low_mean);
    metrics["clip_ratio/high_mean"] = avg((u) => u.clip_ratio.high_mean);
    metrics["clip_ratio/region_mean"] = avg((u) => u.clip_ratio.region_mean);
    metrics.grad_norm = avg((u) => u.grad_norm);
    metrics.learning_rate = (updates[updates.length - 1] as TrainStepReport).learning_rate;
    // Each report's peaks start at the previous one: the step's peak is the largest.
    for (const [name, key] of [
      ["memory/peak_allocated_gib", "peak"],
      ["memory/peak_reserved_gib", "peak_reserved"],
    ] as const) {
      const peaks = updates.flatMap((u) => (u.memory?.[key] === undefined ? [] : [u.memory[key]]));
      if (peaks.length > 0) metrics[name] = Math.max(...peaks) / GIB;
    }
  }

  for (const c of completions) {
    const key = `outcomes/${c.outcome ?? "none"}`;
    metrics[key] = (metrics[key] ?? 0) + 1;
  }
  metrics["sampling/rounds"] = input.samplingRounds;
  metrics["sampling/groups_trained"] = input.groupsTrained;
  metrics["time/generate_s"] = input.seconds.generate;
  metrics["time/score_s"] = input.seconds.score;
  metrics["time/train_s"] = input.seconds.train;
  return metrics;
}
