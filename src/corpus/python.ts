/**
 * Python building blocks shared by the strategy families: the move keys, a helper that
 * simulates a move, and a board evaluation built from weighted features. Every block is a
 * list of lines indented for the body of `def strategy(board):`.
 */
import { DIRECTIONS, KEY_PRESETS, type Direction } from "../game/keys.ts";
import type { Rng } from "./random.ts";

/** The four keys a strategy answers with, in the prompt's key preset. */
export type MoveKeys = Readonly<Record<Direction, string>>;

export { DIRECTIONS, KEY_PRESETS, type Direction };

/** A Python string literal for a key. */
export function lit(key: string): string {
  return JSON.stringify(key);
}

/** A Python list literal of keys. */
export function keyList(keys: MoveKeys, order: readonly Direction[]): string {
  return `[${order.map((d) => lit(keys[d])).join(", ")}]`;
}

/** Indents every non-empty line by `spaces`. */
export function indent(lines: readonly string[], spaces: number): string[] {
  const pad = " ".repeat(spaces);
  return lines.map((line) => (line === "" ? line : pad + line));
}

/** The whole program: the strategy with its body (body lines start at column 0). */
export function program(body: readonly string[], header: readonly string[] = []): string {
  return [...header, "def strategy(board):", ...indent(body, 4)].join("\n") + "\n";
}

/**
 * `slide(row)` merges one row toward its start and returns (new row, points);
 * `move(grid, key)` returns (new grid, points) for a key. Two spellings of `slide`, so the
 * corpus does not teach a single text.
 */
export function moveHelpers(keys: MoveKeys, rng: Rng): string[] {
  const vertical = `(${lit(keys.up)}, ${lit(keys.down)})`;
  const reversed = `(${lit(keys.right)}, ${lit(keys.down)})`;
  const slide = rng.chance(0.5)
    ? [
        "def slide(row):",
        "    tiles = [v for v in row if v]",
        "    out = []",
        "    points = 0",
        "    i = 0",
        "    while i < len(tiles):",
        "        if i + 1 < len(tiles) and tiles[i] == tiles[i + 1]:",
        "            out.append(tiles[i] * 2)",
        "            points += tiles[i] * 2",
        "            i += 2",
        "        else:",
        "            out.append(tiles[i])",
        "            i += 1",
        "    return out + [0] * (len(row) - len(out)), points",
      ]
    : [
        "def slide(row):",
        "    out = []",
        "    points = 0",
        "    merged = False",
        "    for v in row:",
        "        if v == 0:",
        "            continue",
        "        if out and out[-1] == v and not merged:",
        "            out[-1] = v * 2",
        "            points += v * 2",
        "            merged = True",
        "        else:",
        "            out.append(v)",
        "            merged = False",
        "    return out + [0] * (len(row) - len(out)), points",
      ];
  return [
    ...slide,
    "",
    "def move(grid, key):",
    "    n = len(grid)",
    `    if key in ${vertical}:`,
    "        lines = [[grid[r][c] for r in range(n)] for c in range(n)]",
    "    else:",
    "        lines = [list(row) for row in grid]",
    `    if key in ${reversed}:`,
    "        lines = [line[::-1] for line in lines]",
    "    result = []",
    "    points = 0",
    "    for line in lines:",
    "        new, gained = slide(line)",
    "        result.append(new)",
    "        points += gained",
    `    if key in ${reversed}:`,
    "        result = [line[::-1] for line in result]",
    `    if key in ${vertical}:`,
    "        result = [[result[c][r] for c in range(n)] for r in range(n)]",
    "    return result, points",
  ];
}

/** The features a board evaluation can weigh. */
export const FEATURES = ["empty", "merges", "monotonic", "smooth", "corner", "max_tile"] as const;
export type Feature = (typeof FEATURES)[number];
export type Corner = "top_left" | "top_right" | "bottom_left" | "bottom_right";
export const CORNERS: readonly Corner[] = ["top_left", "top_right", "bottom_left", "bottom_right"];

export interface Evaluation {
  /** Weight per feature; a feature left out is not computed. */
  weights: Partial<Record<Feature, number>>;
  corner: Corner;
}

/** Draws an evaluation: a random subset of features with random, mostly positive weights. */
export function randomEvaluation(rng: Rng, quality: "good" | "any"): Evaluation {
  const weights: Partial<Record<Feature, number>> = {};
  for (const feature of FEATURES) {
    if (rng.chance(quality === "good" ? 0.7 : 0.5)) {
      const sign = quality === "good" || rng.chance(0.75) ? 1 : -1;
      weights[feature] = sign * rng.round(0.1, 3);
    }
  }
  if (Object.keys(weights).length === 0) weights.empty = rng.round(0.5, 3);
  if (quality === "good" && (weights.empty ?? 0) <= 0) weights.empty = rng.round(1, 3);
  return { weights, corner: rng.pick(CORNERS) };
}

/** `lg(v)`: log2 of a tile (0 for an empty cell); `evaluate(grid)`: the weighted features. */
export function evaluateHelper({ weights, corner }: Evaluation): string[] {
  const lines = [
    "def lg(v):",
    "    return math.log2(v) if v else 0",
    "",
    "def evaluate(grid):",
    "    n = len(grid)",
    "    cells = [v for row in grid for v in row]",
    "    value = 0.0",
  ];
  const w = (feature: Feature) => weights[feature];
  if (w("empty") !== undefined) {
    lines.push(`    value += ${w("empty")} * cells.count(0)`);
  }
  if (w("merges") !== undefined || w("smooth") !== undefined) {
    lines.push(
      "    pairs = 0",
      "    rough = 0",
      "    for r in range(n):",
      "        for c in range(n):",
      "            v = grid[r][c]",
      "            if v == 0:",
      "                continue",
      "            for rr, cc in ((r, c + 1), (r + 1, c)):",
      "                if rr < n and cc < n and grid[rr][cc]:",
      "                    if grid[rr][cc] == v:",
      "                        pairs += 1",
      "                    rough += abs(lg(v) - lg(grid[rr][cc]))",
    );
    if (w("merges") !== undefined) lines.push(`    value += ${w("merges")} * pairs`);
    if (w("smooth") !== undefined) lines.push(`    value -= ${w("smooth")} * rough`);
  }
  if (w("monotonic") !== undefined) {
    lines.push(
      "    mono = 0",
      "    for line in grid + [list(col) for col in zip(*grid)]:",
      "        inc = 0",
      "        dec = 0",
      "        for a, b in zip(line, line[1:]):",
      "            if lg(a) > lg(b):",
      "                dec += lg(a) - lg(b)",
      "            else:",
      "                inc += lg(b) - lg(a)",
      "        mono += min(inc, dec)",
      `    value -= ${w("monotonic")} * mono`,
    );
  }
  if (w("corner") !== undefined) {
    const row = corner.startsWith("top") ? "r" : "(n - 1 - r)";
    const col = corner.endsWith("left") ? "c" : "(n - 1 - c)";
    lines.push(
      "    pull = 0",
      "    for r in range(n):",
      "        for c in range(n):",
      `            pull += lg(grid[r][c]) * (2 * n - 2 - ${row} - ${col})`,
      `    value += ${w("corner")} * pull / n`,
    );
  }
  if (w("max_tile") !== undefined) {
    lines.push(`    value += ${w("max_tile")} * lg(max(cells))`);
  }
  lines.push("    return value");
  return lines;
}
