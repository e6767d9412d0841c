/**
 * max_tile, a graded reward: log2 of the best tile relative to log2 of the target
 * (1 = reached the target, 0.5 = half way in doublings), averaged over the games played;
 * 0 when there is nothing to run.
 */
import { meanOverGames, type RewardInput } from "./types.ts";

export function maxTile(input: RewardInput): number {
  if (!input.report.loaded) return 0;
  return meanOverGames(input, (g) =>
    g.maxTile > 0 ? Math.log2(g.maxTile) / Math.log2(g.target) : 0,
  );
}
