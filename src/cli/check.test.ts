import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { GameResult } from "../strategy/types.ts";
import { summarize } from "./eval.ts";

const dir = mkdtempSync(join(tmpdir(), "rl2048-check-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("rl2048 check --json", () => {
  it("reports the outcome and every reward", () => {
    const file = join(dir, "answer.txt");
    writeFileSync(file, "```python\ndef strategy(board):\n    import os\n    return 'a'\n```\n");
    const out = execFileSync(process.execPath, ["bin/rl2048.js", "check", file, "--json"], {
      encoding: "utf8",
    });
    const json = JSON.parse(out);
    expect(json.outcome).toBe("rejected");
    expect(json.findings[0].category).toBe("forbidden_import");
    expect(json.rewards).toEqual({
      function_works: -0.5,
      no_cheating: -20,
      strategy_succeeds: 0,
      max_tile: 0,
      game_score: 0,
    });
    const none = join(dir, "none.txt");
    writeFileSync(none, "I cannot help with that.");
    const nothing = JSON.parse(
      execFileSync(process.execPath, ["bin/rl2048.js", "check", none, "--json"], {
        encoding: "utf8",
      }),
    );
    expect(nothing.outcome).toBeNull();
    expect(nothing.rewards.function_works).toBe(-2);
  });
});

describe("eval summary", () => {
  it("counts outcomes, score mean and median, and max tiles", () => {
    const g = (outcome: GameResult["outcome"], score: number, maxTile: number): GameResult => ({
      outcome,
      score,
      maxTile,
      steps: 1,
      target: 2048,
      board: [[0]],
      seconds: 0,
    });
    const s = summarize([g("success", 30, 2048), g("failed", 10, 256), g("failed", 20, 256)], 2);
    expect(s.winRate).toBeCloseTo(1 / 3);
    expect(s.outcomes.failed).toBe(2);
    expect(s.scoreMean).toBe(20);
    expect(s.scoreMedian).toBe(20);
    expect(s.maxTiles).toEqual({ 256: 2, 2048: 1 });
    expect(s.gamesPerSecond).toBe(1.5);
  });
});
