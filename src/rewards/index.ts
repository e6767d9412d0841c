/**
 * The rewards: one function per file, a registry by name, and a helper that scores one
 * completion (extract, run in the sandbox, apply each named reward).
 */
import { extractStrategy } from "../strategy/extract.ts";
import type { SandboxPool } from "../strategy/sandboxPool.ts";
import type { GameSpec } from "../strategy/types.ts";
import { functionWorks } from "./functionWorks.ts";
import { gameScore } from "./gameScore.ts";
import { maxTile } from "./maxTile.ts";
import { noCheating } from "./noCheating.ts";
import { strategySucceeds } from "./strategySucceeds.ts";
import type { RewardFunction, RewardInput } from "./types.ts";

export type { RewardFunction, RewardInput } from "./types.ts";

export const rewardRegistry = {
  function_works: functionWorks,
  no_cheating: noCheating,
  strategy_succeeds: strategySucceeds,
  max_tile: maxTile,
  game_score: gameScore,
} as const satisfies Record<string, RewardFunction>;

export type RewardName = keyof typeof rewardRegistry;
export const REWARD_NAMES = Object.keys(rewardRegistry) as RewardName[];

export interface WeightedReward {
  name: RewardName;
  weight: number;
}

export interface ScoredCompletion {
  input: RewardInput;
  /** Each reward's raw (unweighted) value, by name. */
  rewards: Partial<Record<RewardName, number>>;
  /** The weighted sum. */
  total: number;
}

/** Applies weighted rewards to an input that has already been run. */
export function applyRewards(input: RewardInput, rewards: WeightedReward[]): ScoredCompletion {
  const values: Partial<Record<RewardName, number>> = {};
  let total = 0;
  for (const { name, weight } of rewards) {
    const value = rewardRegistry[name](input);
    values[name] = value;
    total += weight * value;
  }
  return { input, rewards: values, total };
}

/** Extracts, runs (on `games`) and scores one completion. */
export async function scoreCompletion(
  pool: SandboxPool,
  completion: string,
  games: GameSpec[],
  rewards: WeightedReward[],
): Promise<ScoredCompletion> {
  const extraction = extractStrategy(completion);
  const report = await pool.score(extraction.ok ? extraction.code : null, games);
  return applyRewards({ extraction, report }, rewards);
}
