/**
 * One-ply greedy search: simulate each move, score the result with a weighted evaluation
 * (empty cells, merges, monotonicity, smoothness, corner pull, max tile; random weights,
 * some of them harmful) plus the points the move earns, and play the best.
 */
import type { Rng } from "../random.ts";
import {
  DIRECTIONS,
  evaluateHelper,
  keyList,
  lit,
  moveHelpers,
  program,
  randomEvaluation,
  type MoveKeys,
} from "../python.ts";
import type { Program } from "./program.ts";

export function greedyProgram(rng: Rng, keys: MoveKeys): Program {
  const evaluation = randomEvaluation(rng, rng.chance(0.6) ? "good" : "any");
  const pointsWeight = rng.chance(0.5) ? rng.round(0.1, 1) : 0;
  const order = rng.shuffle(DIRECTIONS);
  const points = pointsWeight ? ` + ${pointsWeight} * lg(points)` : "";
  const body = [
    "import math",
    "",
    ...moveHelpers(keys, rng),
    "",
    ...evaluateHelper(evaluation),
    "",
    `best_key = ${lit(keys[order[0]!])}`,
    "best_value = None",
    `for key in ${keyList(keys, order)}:`,
    "    grid, points = move(board, key)",
    "    if grid == board:",
    "        continue",
    `    value = evaluate(grid)${points}`,
    "    if best_value is None or value > best_value:",
    "        best_key = key",
    "        best_value = value",
    "return best_key",
  ];
  return { params: { ...evaluation, pointsWeight, order }, code: program(body) };
}
