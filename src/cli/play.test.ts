import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { Game } from "../game/index.ts";
import { playGame } from "./play.ts";

async function play(game: Game, keys: string) {
  const input = new PassThrough();
  const output = new PassThrough();
  let text = "";
  output.on("data", (chunk: Buffer) => (text += chunk.toString()));
  const done = playGame(game, { input, output, interactive: false, colors: false });
  input.end(keys);
  await done;
  return text;
}

describe("play", () => {
  it("moves with the preset's keys and the arrows, ignores other keys and whitespace", async () => {
    const game = new Game({ size: 4, seed: 9 });
    const expected = new Game({ size: 4, seed: 9 });
    const text = await play(game, "u a\n\x1b[Ax\x1b[C");
    for (const d of ["down", "left", "up", "right"] as const) expected.move(d);
    expect(game.board).toEqual(expected.board);
    expect(game.moves).toBe(4);
    expect(text).toContain('"x" is not a key of the bepo preset');
    expect(text).toContain(`score ${expected.score} · ongoing`);
    expect(text.trim().endsWith(`Left with a score of ${expected.score}.`)).toBe(true);
  });

  it("gives up on q, as the seed does", async () => {
    const game = new Game({ size: 4, seed: 9, keys: "wasd" });
    const text = await play(game, "wq" + "s".repeat(10));
    expect(game.state).toBe("failed");
    expect(game.moves).toBe(2);
    expect(text.trim().endsWith("Game over with a score of 0.")).toBe(true);
  });

  it("stops when the target is reached", async () => {
    const game = new Game({ size: 2, target: 8, p4: 0, seed: 1, keys: "wasd" });
    await play(game, "wasd".repeat(50));
    expect(["success", "failed"]).toContain(game.state);
    expect(game.moves).toBeLessThan(200);
  });
});
