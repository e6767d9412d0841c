import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SandboxPool } from "../strategy/sandboxPool.ts";
import type { GameResult } from "../strategy/types.ts";
import { FAMILIES, generateProgram } from "./corpus.ts";
import { KEY_PRESETS } from "../game/keys.ts";
import { estimate, gameSpecs, playTexts, summarizeQuality } from "./quality.ts";

const game = (outcome: GameResult["outcome"], score: number, maxTile: number): GameResult => ({
  outcome,
  steps: 1,
  score,
  maxTile,
  target: 2048,
  board: [],
  seconds: 0,
});

describe("quality statistics", () => {
  it("estimates a mean and its standard error", () => {
    expect(estimate([])).toEqual({ mean: 0, se: 0 });
    expect(estimate([3])).toEqual({ mean: 3, se: 0 });
    const { mean, se } = estimate([1, 2, 3, 4]);
    expect(mean).toBe(2.5);
    expect(se).toBeCloseTo(Math.sqrt(5 / 3 / 4), 12);
  });

  it("averages per program first, counts unplayed programs as rejected with zero", () => {
    const q = summarizeQuality([
      [game("success", 100, 2048), game("failed", 50, 1024)],
      [game("crash", 0, 2), game("crash", 0, 2)],
      [],
    ]);
    expect(q.programs).toBe(3);
    expect(q.games).toBe(4);
    expect(q.unplayed).toBe(1);
    expect(q.score.mean).toBe(25); // (75 + 0 + 0) / 3
    expect(q.winRate.mean).toBeCloseTo(0.5 / 3, 12);
    expect(q.log2MaxTile.mean).toBeCloseTo((10.5 + 1 + 0) / 3, 12);
    expect(q.maxTiles).toEqual({ 2: 2, 1024: 1, 2048: 1 });
    expect(q.outcomes.crash).toBeCloseTo(2 / 5, 12);
    expect(q.outcomes.rejected).toBeCloseTo(1 / 5, 12);
  });
});

describe("corpus programs in the sandbox", { timeout: 120_000 }, () => {
  let pool: SandboxPool;
  beforeAll(async () => {
    pool = await SandboxPool.start({ workers: 2, limits: { gameSeconds: 1 } });
  });
  afterAll(() => pool.close());

  it("pass the sandbox's static checks and load, every family", async () => {
    const keys = KEY_PRESETS.wasd;
    const texts = FAMILIES.flatMap((family) =>
      Array.from({ length: 4 }, (_, i) => generateProgram(family, 500 + i, keys).text),
    );
    const reports = await Promise.all(texts.map((t) => pool.score(extractCode(t), [])));
    for (const [i, report] of reports.entries()) {
      expect(report.findings, texts[i]).toEqual([]);
      expect(report.loaded, `${report.loadError ?? ""}\n${texts[i]}`).toBe(true);
    }
    // And they play: a small game per program, each ending in one of the outcomes.
    const specs = gameSpecs({ size: 3, target: 32, p4: 0.1, keys: "wasd" }, 1, 1);
    const played = await playTexts(pool, texts, specs);
    expect(played.every((games) => games.length === 1)).toBe(true);
  });
});

function extractCode(text: string): string {
  return text.replace(/^```python\n/, "").replace(/```$/, "");
}
