import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Game } from "./game.ts";
import { DIRECTIONS, type Direction } from "./keys.ts";
import { canMove, slide, wouldChange } from "./moves.ts";

/** A square board of exponents, mostly small and often empty so that merges are common. */
const boardArb = fc.integer({ min: 2, max: 8 }).chain((size) =>
  fc
    .array(
      fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 20 })),
      {
        minLength: size * size,
        maxLength: size * size,
      },
    )
    .map((cells) => ({ size, cells: Uint8Array.from(cells) })),
);
const directionArb = fc.constantFrom(...DIRECTIONS);

const value = (e: number) => (e === 0 ? 0 : 2 ** e);
const total = (cells: Uint8Array) => cells.reduce((sum, e) => sum + value(e), 0);

/** The textbook rule on one line of values, read from the side the tiles move to. */
function mergeLine(line: number[]): { line: number[]; merged: number[] } {
  const tiles = line.filter((v) => v !== 0);
  const out: number[] = [];
  const merged: number[] = [];
  for (let i = 0; i < tiles.length; i++) {
    if (tiles[i] === tiles[i + 1]) {
      out.push(tiles[i]! * 2);
      merged.push(tiles[i]! * 2);
      i++;
    } else out.push(tiles[i]!);
  }
  while (out.length < line.length) out.push(0);
  return { line: out, merged };
}

/** The cell indices of each line, starting at the side the move goes to. */
function lineIndices(size: number, direction: Direction): number[][] {
  return Array.from({ length: size }, (_, l) =>
    Array.from({ length: size }, (_, i) => {
      if (direction === "left") return l * size + i;
      if (direction === "right") return l * size + size - 1 - i;
      if (direction === "up") return i * size + l;
      return (size - 1 - i) * size + l;
    }),
  );
}

describe("slide", () => {
  it("moves every line as the textbook rule does; the gain is the sum of the merged tiles", () => {
    fc.assert(
      fc.property(boardArb, directionArb, ({ size, cells }, direction) => {
        const after = cells.slice();
        const gain = slide(after, size, direction);
        const expected = new Array<number>(size * size);
        let mergedSum = 0;
        for (const idx of lineIndices(size, direction)) {
          const { line, merged } = mergeLine(idx.map((p) => value(cells[p]!)));
          idx.forEach((p, i) => (expected[p] = line[i]!));
          mergedSum += merged.reduce((a, b) => a + b, 0);
        }
        expect([...after].map(value)).toEqual(expected);
        const changed = expected.some((v, p) => v !== value(cells[p]!));
        expect(gain).toBe(changed ? mergedSum : -1);
      }),
    );
  });

  it("keeps the sum of the tiles", () => {
    fc.assert(
      fc.property(boardArb, directionArb, ({ size, cells }, direction) => {
        const after = cells.slice();
        slide(after, size, direction);
        expect(total(after)).toBe(total(cells));
      }),
    );
  });

  it("changes the board exactly when wouldChange says so, and never merges a tile twice", () => {
    fc.assert(
      fc.property(boardArb, directionArb, ({ size, cells }, direction) => {
        const after = cells.slice();
        const gain = slide(after, size, direction);
        expect(gain >= 0).toBe(wouldChange(cells, size, direction));
        if (gain < 0) expect(after).toEqual(cells);
        // One pass merges each pair once: [2,2,2,2] left is [4,4,0,0], not [8,0,0,0].
        const tiles = (c: Uint8Array) => c.filter((e) => e !== 0).length;
        expect(tiles(after)).toBeGreaterThanOrEqual(Math.ceil(tiles(cells) / 2));
      }),
    );
  });

  it("has a move somewhere exactly when canMove says so (on any board with a tile)", () => {
    fc.assert(
      fc.property(boardArb, ({ size, cells }) => {
        // canMove is true on an empty board (it has empty cells) though no move changes it;
        // a game always has tiles, so such a board never reaches it.
        fc.pre(cells.some((e) => e !== 0));
        expect(DIRECTIONS.some((d) => wouldChange(cells, size, d))).toBe(canMove(cells, size));
      }),
    );
  });
});

describe("Game moves", () => {
  it("adds one 2 or 4 to an empty cell after a move that changes the board, nothing otherwise", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 6 }),
        fc.integer(),
        fc.array(directionArb, { maxLength: 60 }),
        (size, seed, directions) => {
          const game = new Game({ size, seed, target: 2 ** 30 });
          for (const d of directions) {
            if (game.state !== "ongoing") break;
            const before = game.exponents;
            const slid = before.slice();
            const gain = slide(slid, size, d);
            const score = game.score;
            game.move(d);
            const after = game.exponents;
            if (gain < 0) {
              expect(after).toEqual(before);
              expect(game.score).toBe(score);
              continue;
            }
            expect(game.score).toBe(score + gain);
            const added = [...after].flatMap((e, p) => (e !== slid[p] ? [p] : []));
            expect(added).toHaveLength(1);
            expect(slid[added[0]!]).toBe(0);
            expect([1, 2]).toContain(after[added[0]!]);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
