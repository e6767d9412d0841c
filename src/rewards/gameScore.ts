/**
 * game_score, a graded reward: the game's score relative to the score of building the
 * target tile from 2s, target * (log2(target) - 1) (so about 1 at the target), averaged over
 * the games played; 0 when there is nothing to run.
 */
import { meanOverGames, type RewardInput } from "./types.ts";

export function gameScore(input: RewardInput): number {
  if (!input.report.loaded) return 0;
  return meanOverGames(input, (g) => g.score / (g.target * (Math.log2(g.target) - 1)));
}
