/**
 * Weak and broken programs, so the policy starts with mistakes to unlearn: a constant move,
 * a random move, a runaway loop, a crash (an index past the end), and a move name that is
 * not a key.
 */
import type { Rng } from "../random.ts";
import { DIRECTIONS, keyList, lit, program, type MoveKeys } from "../python.ts";
import type { Program } from "./program.ts";

export const WEAK_KINDS = ["constant", "random", "loop", "crash", "invalid"] as const;
export type WeakKind = (typeof WEAK_KINDS)[number];

export function weakProgram(rng: Rng, keys: MoveKeys): Program {
  const kind = rng.pick(WEAK_KINDS);
  const direction = rng.pick(DIRECTIONS);
  const order = rng.shuffle(DIRECTIONS);
  const list = keyList(keys, order);
  const bodies: Record<WeakKind, string[]> = {
    constant: [`return ${lit(keys[direction])}`],
    random: ["import random", "", `return random.choice(${list})`],
    loop: [
      `moves = ${list}`,
      "i = 0",
      "while board[0][0] >= 0:",
      "    i += 1",
      "return moves[i % len(moves)]",
    ],
    crash: [`moves = ${list}`, "return moves[len(board) + sum(len(row) for row in board)]"],
    invalid: [`return ${lit(direction)}`],
  };
  return { params: { kind, direction }, code: program(bodies[kind]) };
}
