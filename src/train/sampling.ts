/**
 * One sampling round: `groups` prompts x `num_generations` completions in one engine call,
 * decoded, extracted, scored in the sandbox in parallel (every completion on the same game
 * seeds), and rewarded by each reward function.
 */
import type { TrainConfig } from "./config.ts";
import type {
  Extraction,
  PolicyEngine,
  RewardFunction,
  ScoreReport,
  Scorer,
  TextCodec,
} from "./ports.ts";

export interface SampledCompletion<R extends ScoreReport = ScoreReport> {
  prompt: number[];
  ids: number[];
  logprobs: number[];
  truncated: boolean;
  text: string;
  extraction: Extraction;
  report: R;
  /** One per reward function, in config order. */
  rewards: number[];
  /** Weighted sum of `rewards`. */
  total: number;
  /** The most frequent outcome of its games, or null when nothing ran. */
  outcome: string | null;
  /** The game seeds it played, in `report.games` order. */
  seeds: number[];
}

export interface SamplingParts<R extends ScoreReport = ScoreReport> {
  engine: PolicyEngine;
  codec: TextCodec;
  scorer: Scorer<R>;
  rewards: RewardFunction<R>[];
  extract: (text: string) => Extraction;
}

/** The most frequent outcome among a completion's games (the first one wins ties). */
export function mainOutcome(report: ScoreReport): string | null {
  const counts = new Map<string, number>();
  for (const game of report.games) counts.set(game.outcome, (counts.get(game.outcome) ?? 0) + 1);
  let best: string | null = null;
  for (const [outcome, count] of counts)
    if (best === null || count > counts.get(best)!) best = outcome;
  return best;
}

export async function sampleRound<R extends ScoreReport>(
  parts: SamplingParts<R>,
  config: TrainConfig,
  request: { promptIds: number[]; groups: number; sampleSeed: number; gameSeeds: number[] },
): Promise<{ groups: SampledCompletion<R>[][]; seconds: { generate: number; score: number } }> {
  const gen = config.generation;
  const t0 = performance.now();
  const { completions } = await parts.engine.generate({
    prompts: Array.from({ length: request.groups }, () => request.promptIds),
    n: gen.num_generations,
    max_new_tokens: gen.max_completion_length,
    temperature: gen.temperature,
    top_p: gen.top_p,
    top_k: gen.top_k,
    min_p: gen.min_p,
    seed: request.sampleSeed,
  });
  const t1 = performance.now();

  const scored = await Promise.all(
    completions.map(async (c) => {
      const text = parts.codec.decode(c.ids);
      const extraction = parts.extract(text);
      const report = await parts.scorer.score(
        extraction.ok ? extraction.code : null,
        request.gameSeeds,
      );
      const rewards = parts.rewards.map((fn) => fn.reward({ extraction, report }));
      const total = rewards.reduce((sum, value, f) => sum + value * parts.rewards[f]!.weight, 0);
      const sampled: SampledCompletion<R> = {
        prompt: request.promptIds,
        ids: c.ids,
        logprobs: c.logprobs,
        truncated: c.finish_reason === "length",
        text,
        extraction,
        report,
        rewards,
        total,
        outcome: mainOutcome(report),
        seeds: request.gameSeeds,
      };
      return sampled;
    }),
  );
  const t2 = performance.now();

  const groups: SampledCompletion<R>[][] = [];
  for (let g = 0; g < request.groups; g++) {
    groups.push(scored.slice(g * gen.num_generations, (g + 1) * gen.num_generations));
  }
  return { groups, seconds: { generate: (t1 - t0) / 1000, score: (t2 - t1) / 1000 } };
}
