/**
 * What the sandbox takes and gives back: game specs, limits (one schema, every default),
 * check findings, and the report of one strategy over its games.
 */
import { z } from "zod";
import type { GameOptions } from "../game/index.ts";

/** One game to play: the game's own options (size, target, p4, seed, keys). */
export type GameSpec = GameOptions;

export const OUTCOMES = [
  "success",
  "failed",
  "timeout",
  "crash",
  "invalid_action",
  "frozen",
  "rejected",
] as const;
export type Outcome = (typeof OUTCOMES)[number];

export const FINDING_CATEGORIES = [
  "syntax",
  "signature",
  "forbidden_import",
  "non_stdlib_import",
  "forbidden_name",
] as const;
export type FindingCategory = (typeof FINDING_CATEGORIES)[number];

/** One static-check finding; `line` is 1-based when known. */
export interface Finding {
  category: FindingCategory;
  message: string;
  line: number | null;
}

export interface GameResult {
  outcome: Outcome;
  /** Moves played (each call of the strategy that became a move). */
  steps: number;
  score: number;
  maxTile: number;
  /** The game's target tile, so graded rewards can compare against it. */
  target: number;
  /** The final board (the starting board when nothing ran). */
  board: number[][];
  seconds: number;
  /** Why it ended, for crash, invalid_action, timeout and rejected. */
  message?: string;
}

export interface StrategyReport {
  findings: Finding[];
  /** Whether the program passed the checks and its module ran, defining strategy(board). */
  loaded: boolean;
  loadError?: string;
  games: GameResult[];
}

export const limitsSchema = z.object({
  /** Wall time per game, loading included (the seed's 5 s). */
  gameSeconds: z.number().positive().default(5),
  /** Moves per game before it counts as a timeout. */
  maxSteps: z.number().int().positive().default(100_000),
  /** Consecutive moves that change nothing before the game is `frozen`. */
  frozenAfter: z.number().int().positive().default(10),
  /** WebAssembly memory per worker; past it allocations fail with MemoryError. */
  memoryMb: z.number().int().min(64).default(512),
  /** Characters a strategy may print per game; past it print raises. */
  outputChars: z.number().int().nonnegative().default(65_536),
  /** After an interrupt, how long a worker gets to answer before it is terminated. */
  graceSeconds: z.number().positive().default(1),
});
export type Limits = z.infer<typeof limitsSchema>;
