/** What every reward function reads: the extraction and the sandbox's report. */
import type { Extraction } from "../strategy/extract.ts";
import type { StrategyReport } from "../strategy/types.ts";

export interface RewardInput {
  extraction: Extraction;
  /** The sandbox's report; for a failed extraction, an empty one (nothing ran). */
  report: StrategyReport;
}

export type RewardFunction = (input: RewardInput) => number;

/** Whether the code parsed: extracted, and no `syntax` finding. */
export function parsed({ extraction, report }: RewardInput): boolean {
  return extraction.ok && !report.findings.some((f) => f.category === "syntax");
}

/** The mean of a per-game value over the report's games; 0 when no game ran. */
export function meanOverGames(
  input: RewardInput,
  value: (g: StrategyReport["games"][number]) => number,
): number {
  const games = input.report.games;
  if (games.length === 0) return 0;
  return games.reduce((sum, g) => sum + value(g), 0) / games.length;
}
