/**
 * `rl2048 eval FILE --games N`: plays N games (seeds S, S+1, ...) with one strategy in the
 * sandbox pool and reports win rate, outcome counts, score mean and median, the max-tile
 * histogram and games per second; a progress bar on stderr.
 */
import { existsSync } from "node:fs";
import { cpus } from "node:os";
import { SingleBar, Presets } from "cli-progress";
import { Command } from "commander";
import { z } from "zod";
import { SandboxPool } from "../strategy/sandboxPool.ts";
import { readStrategyFile } from "../strategy/strategyFile.ts";
import {
  OUTCOMES,
  type Finding,
  type GameResult,
  type GameSpec,
  type Outcome,
} from "../strategy/types.ts";
import { addGameOptions, parseGameOptions } from "./gameOptions.ts";
import { UserError } from "./userError.ts";

export interface EvalSummary {
  games: number;
  winRate: number;
  outcomes: Record<Outcome, number>;
  scoreMean: number;
  scoreMedian: number;
  maxTiles: Record<string, number>;
  seconds: number;
  gamesPerSecond: number;
}

export function summarize(results: GameResult[], seconds: number): EvalSummary {
  const outcomes = Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>;
  const maxTiles: Record<string, number> = {};
  for (const r of results) {
    outcomes[r.outcome]++;
    maxTiles[r.maxTile] = (maxTiles[r.maxTile] ?? 0) + 1;
  }
  const scores = results.map((r) => r.score).sort((a, b) => a - b);
  const n = scores.length;
  const median =
    n === 0 ? 0 : n % 2 ? scores[(n - 1) / 2]! : (scores[n / 2 - 1]! + scores[n / 2]!) / 2;
  return {
    games: n,
    winRate: n === 0 ? 0 : outcomes.success / n,
    outcomes,
    scoreMean: n === 0 ? 0 : scores.reduce((a, b) => a + b, 0) / n,
    scoreMedian: median,
    maxTiles,
    seconds,
    gamesPerSecond: seconds > 0 ? n / seconds : 0,
  };
}

const countSchema = z.coerce.number().int().positive();

function seedPlus(seed: number | bigint, i: number): number | bigint {
  if (typeof seed === "bigint") return seed + BigInt(i);
  const s = seed + i;
  return Number.isSafeInteger(s) ? s : BigInt(seed) + BigInt(i);
}

export function evalCommand(): Command {
  return addGameOptions(
    new Command("eval")
      .description("Play many games with one strategy and report how it does")
      .argument("<file>", "a model completion (text) or a .py file")
      .requiredOption("--games <n>", "number of games (seeds --seed, --seed+1, ...)")
      .option("--workers <n>", "sandbox workers (default: one per core)")
      .option("--json", "print one JSON object"),
  ).action(async (file: string, opts: Record<string, unknown>) => {
    const base = parseGameOptions(opts);
    const games = countSchema.safeParse(opts.games);
    if (!games.success)
      throw new UserError(`--games must be a positive integer, got ${String(opts.games)}`);
    const workers = opts.workers === undefined ? undefined : countSchema.safeParse(opts.workers);
    if (workers && !workers.success) {
      throw new UserError(`--workers must be a positive integer, got ${String(opts.workers)}`);
    }
    if (!existsSync(file)) throw new UserError(`${file}: no such file`);
    const extraction = readStrategyFile(file);
    if (!extraction.ok) throw new UserError(`${file}: no strategy: ${extraction.reason}`);

    const pool = await SandboxPool.start({ workers: workers?.data });
    const specs: GameSpec[] = Array.from({ length: games.data }, (_, i) => ({
      ...base,
      seed: seedPlus(base.seed, i),
    }));
    const bar = new SingleBar(
      {
        format: "eval [{bar}] {value}/{total} games | {eta_formatted} left",
        stream: process.stderr,
      },
      Presets.shades_classic,
    );
    bar.start(specs.length, 0);
    const start = performance.now();
    let findings: Finding[] = [];
    let loadError: string | undefined;
    let results: GameResult[];
    try {
      results = await Promise.all(
        specs.map(async (spec) => {
          const report = await pool.score(extraction.code, [spec]);
          findings = report.findings;
          loadError ??= report.loadError;
          bar.increment();
          return report.games[0]!;
        }),
      );
    } finally {
      bar.stop();
      await pool.close();
    }
    const summary = summarize(results, (performance.now() - start) / 1000);
    if (opts.json) {
      console.log(JSON.stringify({ ...summary, findings, loadError: loadError ?? null }));
      return;
    }
    for (const f of findings) console.log(`check: ${f.category}: ${f.message}`);
    if (loadError) console.log(`load: ${loadError}`);
    const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
    console.log(`games: ${summary.games} (${base.size}x${base.size}, target ${base.target})`);
    console.log(`win rate: ${pct(summary.winRate)}`);
    const counts = OUTCOMES.filter((o) => summary.outcomes[o] > 0).map(
      (o) => `${o} ${summary.outcomes[o]}`,
    );
    console.log(`outcomes: ${counts.join(", ")}`);
    console.log(`score: mean ${summary.scoreMean.toFixed(1)}, median ${summary.scoreMedian}`);
    console.log("max tile:");
    const tiles = Object.keys(summary.maxTiles)
      .map(Number)
      .sort((a, b) => a - b);
    const widest = Math.max(...Object.values(summary.maxTiles));
    for (const t of tiles) {
      const n = summary.maxTiles[t]!;
      const bar = "#".repeat(Math.max(1, Math.round((40 * n) / widest)));
      console.log(`  ${String(t).padStart(6)} ${String(n).padStart(6)} ${bar}`);
    }
    console.log(
      `speed: ${summary.gamesPerSecond.toFixed(1)} games/s (${pool.workers} workers, ${cpus()[0]?.model ?? "unknown CPU"})`,
    );
  });
}
