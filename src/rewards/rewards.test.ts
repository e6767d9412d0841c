import { describe, expect, it } from "vitest";
import type { Extraction } from "../strategy/extract.ts";
import type { Finding, GameResult, Outcome, StrategyReport } from "../strategy/types.ts";
import { applyRewards, rewardRegistry, type RewardInput } from "./index.ts";

const OK: Extraction = { ok: true, code: "def strategy(board):\n    return 'a'" };
const NONE: Extraction = { ok: false, reason: "no fenced block and no function" };

function game(outcome: Outcome, maxTile = 64, score = 500, target = 2048): GameResult {
  return { outcome, steps: 10, score, maxTile, target, board: [[0]], seconds: 0.01 };
}
function finding(category: Finding["category"]): Finding {
  return { category, message: "x", line: 1 };
}
function input(extraction: Extraction, report: Partial<StrategyReport> = {}): RewardInput {
  return { extraction, report: { findings: [], loaded: true, games: [], ...report } };
}
const nothing = input(NONE, { loaded: false });
const syntax = input(OK, {
  loaded: false,
  findings: [finding("syntax")],
  games: [game("rejected")],
});
const rejected = (c: Finding["category"]) =>
  input(OK, { loaded: false, findings: [finding(c)], games: [game("rejected")] });
const loadFailed = input(OK, { loaded: false, loadError: "ImportError", games: [game("crash")] });
const played = (...outcomes: Outcome[]) => input(OK, { games: outcomes.map((o) => game(o)) });

describe("function_works", () => {
  const f = rewardRegistry.function_works;
  it("values each case", () => {
    expect(f(played("success"))).toBe(1);
    expect(f(played("crash"))).toBe(1);
    expect(f(nothing)).toBe(-2);
    expect(f(syntax)).toBe(-2);
    expect(f(loadFailed)).toBe(-0.5);
    expect(f(rejected("signature"))).toBe(-0.5);
    expect(f(rejected("forbidden_import"))).toBe(-0.5);
  });
});

describe("no_cheating", () => {
  const f = rewardRegistry.no_cheating;
  it("values each case", () => {
    expect(f(played("success"))).toBe(1);
    expect(f(rejected("signature"))).toBe(1);
    expect(f(loadFailed)).toBe(1);
    expect(f(rejected("forbidden_import"))).toBe(-20);
    expect(f(rejected("non_stdlib_import"))).toBe(-20);
    expect(f(rejected("forbidden_name"))).toBe(-20);
    expect(f(nothing)).toBe(-1);
    expect(f(syntax)).toBe(-1);
  });
});

describe("strategy_succeeds", () => {
  const f = rewardRegistry.strategy_succeeds;
  it("values each outcome", () => {
    expect(f(played("success"))).toBe(20);
    expect(f(played("failed"))).toBe(2);
    expect(f(played("timeout"))).toBe(-1);
    expect(f(played("frozen"))).toBe(-1);
    expect(f(played("crash"))).toBe(-3);
    expect(f(played("invalid_action"))).toBe(-3);
  });
  it("is 0 with nothing to run", () => {
    expect(f(nothing)).toBe(0);
    expect(f(syntax)).toBe(0);
    expect(f(rejected("forbidden_import"))).toBe(0);
    expect(f(loadFailed)).toBe(0);
  });
  it("averages over games", () => {
    expect(f(played("success", "failed", "crash", "timeout"))).toBe((20 + 2 - 3 - 1) / 4);
  });
});

describe("graded rewards", () => {
  it("max_tile is log2(tile) / log2(target), averaged", () => {
    const f = rewardRegistry.max_tile;
    expect(f(input(OK, { games: [game("success", 2048)] }))).toBe(1);
    expect(f(input(OK, { games: [game("failed", 256, 0, 2048)] }))).toBeCloseTo(8 / 11);
    expect(f(input(OK, { games: [game("failed", 16, 0, 256), game("failed", 256, 0, 256)] }))).toBe(
      0.75,
    );
    expect(f(nothing)).toBe(0);
    expect(f(loadFailed)).toBe(0);
  });
  it("game_score is score / (target * (log2(target) - 1)), averaged", () => {
    const f = rewardRegistry.game_score;
    expect(f(input(OK, { games: [game("success", 2048, 20480)] }))).toBe(1);
    expect(f(input(OK, { games: [game("failed", 64, 0), game("failed", 64, 10240)] }))).toBe(0.25);
    expect(f(nothing)).toBe(0);
  });
});

describe("applyRewards", () => {
  it("weights and sums the named rewards", () => {
    const scored = applyRewards(played("success"), [
      { name: "function_works", weight: 1 },
      { name: "no_cheating", weight: 0.5 },
      { name: "strategy_succeeds", weight: 2 },
    ]);
    expect(scored.rewards).toEqual({ function_works: 1, no_cheating: 1, strategy_succeeds: 20 });
    expect(scored.total).toBe(1 + 0.5 + 40);
  });
});
