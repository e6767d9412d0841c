import { describe, expect, it } from "vitest";
import { Game } from "./game.ts";
import { DIRECTIONS, KEY_PRESETS, type KeyPreset } from "./keys.ts";
import { PythonRandom } from "./pythonRandom.ts";
import { runReference } from "./reference/runReference.ts";

interface Position {
  board: number[][];
  score: number;
  state: string;
}

interface Case {
  size: number;
  target: number;
  p4: number;
  seed: number | bigint;
  keys: KeyPreset;
  moves: string[];
}

// Keys that are not plain preset keys but still moves (after Python's strip().lower()), and
// keys that are not moves: each must do in TypeScript exactly what it does in Python.
const ODD_MOVES = [" É ", "U\n", "\tI", "A\x1c", "\x85a", "\u3000u"];
const NOT_MOVES = ["q", "Q", "", " ", "AA", "x", "\ufeffa", "up", "é\u0301"];

/** A key sequence: preset keys at random, now and then an odd spelling or a wrong key. */
function keySequence(preset: KeyPreset, seed: number, length: number, wrongKeys: boolean) {
  const rng = new PythonRandom(seed + 1_000_000);
  const keys = DIRECTIONS.map((d) => KEY_PRESETS[preset][d]);
  return Array.from({ length }, () => {
    const roll = rng.random();
    if (roll < 0.02) return rng.choice(ODD_MOVES);
    if (wrongKeys && roll < 0.025) return rng.choice(NOT_MOVES);
    return rng.choice(keys);
  });
}

function cases(): Case[] {
  const out: Case[] = [];
  const seeds: (number | bigint)[] = [
    0,
    -1,
    1,
    42,
    -987654321,
    2 ** 32,
    2 ** 32 + 5,
    2n ** 70n + 3n,
  ];
  for (let s = 0; s < 24; s++) seeds.push(s * 7919 - 50_000);
  const shapes = [
    { size: 2, target: 16, p4: 0.1 },
    { size: 3, target: 64, p4: 0.5 },
    { size: 4, target: 2048, p4: 0.1 },
    { size: 4, target: 4, p4: 1 },
    { size: 5, target: 128, p4: 0 },
    { size: 6, target: 2048, p4: 0.1 },
    { size: 7, target: 256, p4: 0.25 },
    { size: 16, target: 64, p4: 0.1 },
  ];
  seeds.forEach((seed, i) => {
    const shape = shapes[i % shapes.length]!;
    const keys: KeyPreset = i % 3 === 0 ? "wasd" : "bepo";
    const length = shape.size === 6 && i < 16 ? 2500 : 400;
    out.push({ ...shape, seed, keys, moves: keySequence(keys, i, length, i % 4 === 1) });
  });
  return out;
}

function playTs(c: Case): Position[] {
  const game = new Game(c);
  const trace: Position[] = [{ board: game.board, score: game.score, state: game.state }];
  for (const key of c.moves) {
    game.act(key);
    trace.push({ board: game.board, score: game.score, state: game.state });
  }
  return trace;
}

describe("Game against the Python reference of the seed's GameBoard", () => {
  it("plays the same boards, scores and states, move by move", () => {
    const all = cases();
    const expected = runReference<Position[][]>({
      op: "play",
      games: all.map((c) => ({ ...c, preset: KEY_PRESETS[c.keys], keys: c.moves })),
    });
    const outcomes = new Set<string>();
    all.forEach((c, i) => {
      const got = playTs(c);
      const want = expected[i]!;
      for (let m = 0; m < want.length; m++) {
        if (JSON.stringify(got[m]) !== JSON.stringify(want[m])) {
          expect(
            got[m],
            `seed ${c.seed} size ${c.size}: position ${m}, key ${c.moves[m - 1]}`,
          ).toEqual(want[m]);
        }
      }
      outcomes.add(want.at(-1)!.state);
    });
    // The cases must reach both endings, or the comparison proves less than it claims.
    expect(outcomes).toContain("success");
    expect(outcomes).toContain("failed");
  });
});

describe("Game", () => {
  it("starts with two tiles and the schema's defaults", () => {
    const game = new Game({});
    expect(game.size).toBe(6);
    expect(game.board.flat().filter((v) => v > 0)).toHaveLength(2);
    expect(game.state).toBe("ongoing");
    expect(game.score).toBe(0);
    expect(game.moves).toBe(0);
  });

  it("hands out a fresh copy of the board", () => {
    const game = new Game({ seed: 3 });
    const board = game.board;
    board[0]![0] = 2048;
    expect(game.board[0]![0]).not.toBe(2048);
    expect(game.state).toBe("ongoing");
  });

  it("fails on an unknown key and ignores actions after the end", () => {
    const game = new Game({ seed: 5, keys: "wasd" });
    game.act("é"); // a bepo key is not a wasd key
    expect(game.state).toBe("failed");
    const board = game.board;
    game.act("w");
    game.move("left");
    expect(game.board).toEqual(board);
    expect(game.moves).toBe(1);
  });

  it("counts moves that change nothing and says which directions would change the board", () => {
    const game = new Game({ size: 4, seed: 11 });
    for (const d of DIRECTIONS) {
      const before = game.board;
      const moves = game.moves;
      const would = game.wouldChange(d);
      expect(game.legalDirections().includes(d)).toBe(would);
      const probe = new Game({ size: 4, seed: 11 });
      probe.move(d);
      expect(JSON.stringify(probe.board) !== JSON.stringify(before)).toBe(would);
      expect(game.moves).toBe(moves);
    }
  });

  it("reports the largest tile", () => {
    const game = new Game({ size: 2, target: 4, p4: 1, seed: 0 });
    expect(game.maxTile).toBe(4);
    expect(game.state).toBe("success");
  });

  it("rejects bad options", () => {
    expect(() => new Game({ size: 1 })).toThrow();
    expect(() => new Game({ target: 6 })).toThrow();
  });
});
