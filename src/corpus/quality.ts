/**
 * How good a set of programs is at 2048: each program plays the same games in the sandbox,
 * and the summary gives the mean score and mean log2 max tile over programs with their
 * standard errors, the win rate, the max-tile histogram and the share of each outcome.
 */
import type { KeyPreset } from "../game/keys.ts";
import { extractStrategy } from "../strategy/extract.ts";
import type { SandboxPool } from "../strategy/sandboxPool.ts";
import { OUTCOMES, type GameResult, type GameSpec, type Outcome } from "../strategy/types.ts";

export interface GameSetting {
  size: number;
  target: number;
  p4: number;
  keys: KeyPreset;
}

/** The games every program plays: seeds `firstSeed`, `firstSeed + 1`, ... */
export function gameSpecs(setting: GameSetting, games: number, firstSeed: number): GameSpec[] {
  return Array.from({ length: games }, (_, i) => ({ ...setting, seed: firstSeed + i }));
}

/** Plays every text (a model answer or completion) on every game; nothing extracted plays none. */
export async function playTexts(
  pool: SandboxPool,
  texts: readonly string[],
  specs: GameSpec[],
  onDone?: () => void,
): Promise<GameResult[][]> {
  return Promise.all(
    texts.map(async (text) => {
      const extraction = extractStrategy(text);
      const report = await pool.score(extraction.ok ? extraction.code : null, specs);
      onDone?.();
      return report.games;
    }),
  );
}

export interface Estimate {
  mean: number;
  /** Standard error of the mean (sample standard deviation / sqrt(n)). */
  se: number;
}

export function estimate(values: readonly number[]): Estimate {
  const n = values.length;
  if (n === 0) return { mean: 0, se: 0 };
  const mean = values.reduce((a, b) => a + b, 0) / n;
  if (n === 1) return { mean, se: 0 };
  const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1);
  return { mean, se: Math.sqrt(variance / n) };
}

export interface Quality {
  programs: number;
  games: number;
  /** Programs that played no game (nothing extracted). */
  unplayed: number;
  /** Over programs, each program's mean over its games (a program that played none counts 0). */
  score: Estimate;
  log2MaxTile: Estimate;
  winRate: Estimate;
  maxTiles: Record<string, number>;
  /** Share of games ending in each outcome; unplayed programs count as `rejected`. */
  outcomes: Record<Outcome, number>;
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

export function summarizeQuality(perProgram: readonly GameResult[][]): Quality {
  const counts = Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>;
  const maxTiles: Record<string, number> = {};
  let games = 0;
  let unplayed = 0;
  for (const results of perProgram) {
    if (results.length === 0) {
      unplayed++;
      counts.rejected++;
    }
    for (const r of results) {
      games++;
      counts[r.outcome]++;
      maxTiles[r.maxTile] = (maxTiles[r.maxTile] ?? 0) + 1;
    }
  }
  const total = games + unplayed;
  const outcomes = Object.fromEntries(
    OUTCOMES.map((o) => [o, total ? counts[o] / total : 0]),
  ) as Record<Outcome, number>;
  return {
    programs: perProgram.length,
    games,
    unplayed,
    score: estimate(perProgram.map((rs) => mean(rs.map((r) => r.score)))),
    log2MaxTile: estimate(
      perProgram.map((rs) => mean(rs.map((r) => Math.log2(Math.max(1, r.maxTile))))),
    ),
    winRate: estimate(
      perProgram.map((rs) => mean(rs.map((r) => (r.outcome === "success" ? 1 : 0)))),
    ),
    maxTiles,
    outcomes,
  };
}
