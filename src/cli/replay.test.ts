import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { Game, gameOptionsSchema } from "../game/index.ts";
import { replay } from "./replay.ts";

const BIN = fileURLToPath(new URL("../../bin/rl2048.js", import.meta.url));
const rl2048 = (args: string[]) =>
  spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8" });

describe("replay", () => {
  it("gives the starting position, then one position per key, as the game plays them", () => {
    const options = gameOptionsSchema.parse({ size: 4, seed: -3, keys: "bepo" });
    const steps = replay(options, "uaié\u0065\u0301Ux");
    expect(steps.map((s) => s.key)).toEqual([undefined, "u", "a", "i", "é", "é", "U", "x"]);
    expect(steps.map((s) => s.direction)).toEqual([
      undefined,
      "down",
      "left",
      "right",
      "up",
      "up",
      "down",
      null,
    ]);
    const game = new Game(options);
    expect(steps[0]!.position).toEqual({ board: game.board, score: 0, state: "ongoing" });
    for (const step of steps.slice(1)) {
      game.act(step.key!);
      expect(step.position).toEqual({ board: game.board, score: game.score, state: game.state });
    }
    expect(steps.at(-1)!.position.state).toBe("failed");
  });

  it("prints JSON lines from the command line and refuses bad options in one line", () => {
    const ok = rl2048([
      "replay",
      "--size",
      "3",
      "--target",
      "8",
      "--p4",
      "0.5",
      "--seed",
      "4294967297",
      "--keys",
      "wasd",
      "--moves",
      "wasd",
      "--json",
    ]);
    expect(ok.status).toBe(0);
    const lines = ok.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(5);
    const game = new Game({ size: 3, target: 8, p4: 0.5, seed: 4294967297, keys: "wasd" });
    expect(lines[0]).toEqual({ board: game.board, score: 0, state: game.state });

    const bad = rl2048(["replay", "--target", "3", "--moves", "u"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim()).toBe("rl2048: --target must be a power of two from 4 to 2^30, got 3");
  });
});
