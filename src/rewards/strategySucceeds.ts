/**
 * strategy_succeeds (the seed's): per game +20 success; +2 the game ended without success;
 * -1 timeout or frozen; -3 crash or invalid action; averaged over the games played. 0 when
 * there is nothing to run (no function, rejected by the checks, or not loaded).
 */
import type { Outcome } from "../strategy/types.ts";
import { meanOverGames, type RewardInput } from "./types.ts";

const VALUE: Record<Outcome, number> = {
  success: 20,
  failed: 2,
  timeout: -1,
  frozen: -1,
  crash: -3,
  invalid_action: -3,
  rejected: 0,
};

export function strategySucceeds(input: RewardInput): number {
  if (!input.report.loaded) return 0;
  return meanOverGames(input, (g) => VALUE[g.outcome]);
}
