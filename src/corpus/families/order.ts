/**
 * Fixed preference orders: try the moves in one order. With `check`, play the first move
 * that changes the board (simulated); without it, cycle through the order by the tile sum,
 * which freezes as soon as the chosen move changes nothing.
 */
import type { Rng } from "../random.ts";
import { DIRECTIONS, keyList, lit, moveHelpers, program, type MoveKeys } from "../python.ts";
import type { Program } from "./program.ts";

export function orderProgram(rng: Rng, keys: MoveKeys): Program {
  const order = rng.shuffle(DIRECTIONS).slice(0, rng.int(2, 4));
  const check = rng.chance(0.7);
  const list = keyList(keys, order);
  const first = lit(keys[order[0]!]);
  const body = check
    ? [
        ...moveHelpers(keys, rng),
        "",
        `for key in ${list}:`,
        "    grid, _ = move(board, key)",
        "    if grid != board:",
        "        return key",
        `return ${first}`,
      ]
    : [
        `order = ${list}`,
        "total = sum(sum(row) for row in board)",
        "return order[(total // 2) % len(order)]",
      ];
  return { params: { order, check }, code: program(body) };
}
