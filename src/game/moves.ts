/**
 * The rules of a move on a flat board of exponents (0 = empty, e = tile 2^e), row-major,
 * updated in place. Tiles slide toward the move's side and each pair merges once, nearest
 * the side first, as in the seed's `_compress_and_merge_row_left`. No RNG here.
 */
import type { Direction } from "./keys.ts";

/** 2^e as a float, for e in 0..255. */
export const POW2 = Float64Array.from({ length: 256 }, (_, e) => 2 ** e);

/** How to walk the lines of a board toward a side: first cell of each line, then the step. */
interface Lines {
  starts: Int32Array;
  step: number;
}

/** Lines of every board size, built on first use: LINES[size][direction]. */
const LINES: Record<Direction, Lines>[] = [];

function lines(size: number, direction: Direction): Lines {
  return (LINES[size] ??= buildLines(size))[direction];
}

function buildLines(size: number): Record<Direction, Lines> {
  const build = (first: (line: number) => number, step: number): Lines => ({
    starts: Int32Array.from({ length: size }, (_, line) => first(line)),
    step,
  });
  return {
    left: build((r) => r * size, 1),
    right: build((r) => r * size + size - 1, -1),
    up: build((c) => c, size),
    down: build((c) => (size - 1) * size + c, -size),
  };
}

/**
 * Slides the board in place. Returns the score gained (the sum of the merged tiles' values),
 * or -1 when the move changes nothing (the board is then untouched).
 */
export function slide(cells: Uint8Array, size: number, direction: Direction): number {
  const { starts, step } = lines(size, direction);
  let gain = 0;
  let changed = false;
  for (let l = 0; l < size; l++) {
    const start = starts[l]!;
    let write = start; // where the next tile goes
    let open = -1; // position of the last placed tile if it may still merge
    for (let i = 0, p = start; i < size; i++, p += step) {
      const v = cells[p]!;
      if (v === 0) continue;
      if (open >= 0 && cells[open] === v) {
        cells[open] = v + 1;
        cells[p] = 0;
        gain += POW2[v + 1]!;
        open = -1;
        changed = true;
      } else {
        if (p !== write) {
          cells[write] = v;
          cells[p] = 0;
          changed = true;
        }
        open = write;
        write += step;
      }
    }
  }
  return changed ? gain : -1;
}

/** Whether moving in this direction would change the board (no copy, no writes). */
export function wouldChange(cells: Uint8Array, size: number, direction: Direction): boolean {
  const { starts, step } = lines(size, direction);
  for (let l = 0; l < size; l++) {
    let seenEmpty = false;
    let prev = 0;
    for (let i = 0, p = starts[l]!; i < size; i++, p += step) {
      const v = cells[p]!;
      if (v === 0) seenEmpty = true;
      else if (seenEmpty || v === prev) return true;
      else prev = v;
    }
  }
  return false;
}

/** Whether any move can change the board: an empty cell or two equal neighbours. */
export function canMove(cells: Uint8Array, size: number): boolean {
  for (let r = 0, p = 0; r < size; r++) {
    for (let c = 0; c < size; c++, p++) {
      const v = cells[p]!;
      if (v === 0) return true;
      if (c + 1 < size && cells[p + 1] === v) return true;
      if (r + 1 < size && cells[p + size] === v) return true;
    }
  }
  return false;
}
