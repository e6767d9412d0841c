/**
 * The config's reward functions (src/rewards' registry) with their weights; an unknown name
 * fails with the list of known ones.
 */
import { REWARD_NAMES, rewardRegistry, type RewardName } from "../rewards/index.ts";
import type { StrategyReport } from "../strategy/types.ts";
import { ConfigError, type TrainConfig } from "./config.ts";
import type { RewardFunction } from "./ports.ts";

export function rewardFunctions(config: TrainConfig): RewardFunction<StrategyReport>[] {
  const { functions, weights } = config.rewards;
  return functions.map((name, f) => {
    if (!(REWARD_NAMES as string[]).includes(name)) {
      throw new ConfigError(
        `config: rewards.functions: unknown reward ${name} (known: ${REWARD_NAMES.join(", ")})`,
      );
    }
    return {
      name,
      weight: weights?.[f] ?? 1,
      reward: rewardRegistry[name as RewardName],
    };
  });
}
