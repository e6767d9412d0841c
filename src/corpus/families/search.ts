/**
 * Two-ply search: for each move, average the evaluation over the cells where the new tile
 * can land (a 2, or a 2 and a 4 weighted 9:1). With `lookahead`, each landing is followed by
 * the best next move, over at most `cells` sampled cells to keep a move fast.
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

export function searchProgram(rng: Rng, keys: MoveKeys): Program {
  const evaluation = randomEvaluation(rng, rng.chance(0.8) ? "good" : "any");
  const lookahead = rng.chance(0.4);
  const fours = rng.chance(0.3);
  const cells = lookahead ? rng.int(3, 6) : 0;
  const order = rng.shuffle(DIRECTIONS);
  const keysLiteral = keyList(keys, order);
  const after = lookahead ? "best_next(grid)" : "evaluate(grid)";
  const body = [
    "import math",
    "",
    ...moveHelpers(keys, rng),
    "",
    ...evaluateHelper(evaluation),
    "",
  ];
  if (lookahead) {
    body.push(
      "def best_next(grid):",
      "    best = None",
      `    for key in ${keysLiteral}:`,
      "        new, _ = move(grid, key)",
      "        if new != grid:",
      "            value = evaluate(new)",
      "            if best is None or value > best:",
      "                best = value",
      "    return -1000.0 if best is None else best",
      "",
    );
  }
  body.push(
    "def expected(grid):",
    "    n = len(grid)",
    "    empty = [(r, c) for r in range(n) for c in range(n) if grid[r][c] == 0]",
    "    if not empty:",
    `        return ${after}`,
  );
  if (lookahead) body.push(`    empty = empty[:: max(1, len(empty) // ${cells})]`);
  body.push("    total = 0.0", "    for r, c in empty:");
  if (fours) {
    body.push(
      "        grid[r][c] = 2",
      `        total += 0.9 * ${after}`,
      "        grid[r][c] = 4",
      `        total += 0.1 * ${after}`,
    );
  } else {
    body.push("        grid[r][c] = 2", `        total += ${after}`);
  }
  body.push(
    "        grid[r][c] = 0",
    "    return total / len(empty)",
    "",
    `best_key = ${lit(keys[order[0]!])}`,
    "best_value = None",
    `for key in ${keysLiteral}:`,
    "    grid, _ = move(board, key)",
    "    if grid == board:",
    "        continue",
    "    value = expected(grid)",
    "    if best_value is None or value > best_value:",
    "        best_key = key",
    "        best_value = value",
    "return best_key",
  );
  return { params: { ...evaluation, lookahead, fours, cells, order }, code: program(body) };
}
