/**
 * Sampling: `groups` prompts x `num_generations` completions in one engine call (`generate`),
 * then each decoded, extracted, scored in the sandbox in parallel (every completion on the same
 * game seeds) and rewarded by each reward function (`score`). `sampleRound` does both.
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

/** A completion as sampled, before it is scored. */
export interface UnscoredCompletion {
  prompt: number[];
  ids: number[];
  logprobs: number[];
  truncated: boolean;
  /** The game seeds it plays. */
  seeds: number[];
}

export interface SampledCompletion<R extends ScoreReport = ScoreReport> extends UnscoredCompletion {
  text: string;
  extraction: Extraction;
  report: R;
  /** One per reward function, in config order. */
  rewards: number[];
  /** Weighted sum of `rewards`. */
  total: number;
  /** The most frequent outcome of its games, or null when nothing ran. */
  outcome: string | null;
}

export interface SamplingParts<R extends ScoreReport = ScoreReport> {
  engine: PolicyEngine;
  codec: TextCodec;
  scorer: Scorer<R>;
  rewards: RewardFunction<R>[];
  extract: (text: string) => Extraction;
}

export interface SampleRequest {
  promptIds: number[];
  groups: number;
  sampleSeed: number;
  gameSeeds: number[];
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

export async function generate(
  engine: PolicyEngine,
  config: TrainConfig,
  request: SampleRequest,
): Promise<UnscoredCompletion[]> {
  const gen = config.generation;
  const { completions } = await engine.generate({
    prompts: Array.from({ length: request.groups }, () => request.promptIds),
    n: gen.num_generations,
    max_new_tokens: gen.max_completion_length,
    temperature: gen.temperature,
    top_p: gen.top_p,
    top_k: gen.top_k,
    min_p: gen.min_p,
    seed: request.sampleSeed,
  });
  return completions.map((c) => ({
    prompt: request.promptIds,
    ids: c.ids,
    logprobs: c.logprobs,
    truncated: c.finish_reason === "length",
    seeds: request.gameSeeds,
  }));
}

/** Scores every completion in parallel; the result is grouped, `groupSize` to a prompt. */
export async function score<R extends ScoreReport>(
  parts: SamplingParts<R>,
  completions: UnscoredCompletion[],
  groupSize: number,
): Promise<SampledCompletion<R>[][]> {
  const scored = await Promise.all(
    completions.map(async (c): Promise<SampledCompletion<R>> => {
      const text = parts.codec.decode(c.ids);
      const extraction = parts.extract(text);
      const report = await parts.scorer.score(extraction.ok ? extraction.code : null, c.seeds);
      const rewards = parts.rewards.map((fn) => fn.reward({ extraction, report }));
      const total = rewards.reduce((sum, value, f) => sum + value * parts.rewards[f]!.weight, 0);
      return { ...c, text, extraction, report, rewards, total, outcome: mainOutcome(report) };
    }),
  );
  const groups: SampledCompletion<R>[][] = [];
  for (let start = 0; start < scored.length; start += groupSize) {
    groups.push(scored.slice(start, start + groupSize));
  }
  return groups;
}

/** `generate`, then `score`, with the seconds each took. */
export async function sampleRound<R extends ScoreReport>(
  parts: SamplingParts<R>,
  config: TrainConfig,
  request: SampleRequest,
): Promise<{ groups: SampledCompletion<R>[][]; seconds: { generate: number; score: number } }> {
  const t0 = performance.now();
  const completions = await generate(parts.engine, config, request);
  const t1 = performance.now();
  const groups = await score(parts, completions, config.generation.num_generations);
  const t2 = performance.now();
  return { groups, seconds: { generate: (t1 - t0) / 1000, score: (t2 - t1) / 1000 } };
}
