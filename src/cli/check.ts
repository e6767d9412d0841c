/**
 * `rl2048 check FILE`: extracts, checks, runs one game and scores one completion (or `.py`
 * file), printing each stage; `--json` prints one object with `outcome` and `rewards`.
 */
import { existsSync } from "node:fs";
import { Command } from "commander";
import { renderText } from "../game/index.ts";
import { applyRewards, REWARD_NAMES } from "../rewards/index.ts";
import { SandboxPool } from "../strategy/sandboxPool.ts";
import { readStrategyFile } from "../strategy/strategyFile.ts";
import { addGameOptions, parseGameOptions } from "./gameOptions.ts";
import { UserError } from "./userError.ts";

export function checkCommand(): Command {
  return addGameOptions(
    new Command("check")
      .description("Extract, check, run and score one completion or .py file")
      .argument("<file>", "a model completion (text) or a .py file")
      .option("--json", "print one JSON object"),
  ).action(async (file: string, opts: Record<string, unknown>) => {
    const game = parseGameOptions(opts);
    if (!existsSync(file)) throw new UserError(`${file}: no such file`);
    const extraction = readStrategyFile(file);
    const pool = await SandboxPool.start({ workers: 1 });
    try {
      const report = await pool.score(extraction.ok ? extraction.code : null, [game]);
      const scored = applyRewards(
        { extraction, report },
        REWARD_NAMES.map((name) => ({ name, weight: 1 })),
      );
      const result = report.games[0];
      if (opts.json) {
        const out = {
          extraction,
          findings: report.findings,
          loaded: report.loaded,
          loadError: report.loadError ?? null,
          outcome: result?.outcome ?? null,
          game: result ?? null,
          rewards: scored.rewards,
        };
        console.log(JSON.stringify(out, (_k, v) => (typeof v === "bigint" ? String(v) : v)));
        return;
      }
      console.log(
        extraction.ok
          ? `extraction: ok (${extraction.code.split("\n").length} lines)`
          : `extraction: failed: ${extraction.reason}`,
      );
      if (report.findings.length === 0) console.log(extraction.ok ? "checks: passed" : "checks: -");
      for (const f of report.findings) {
        console.log(`check: ${f.category}: ${f.message}${f.line ? ` (line ${f.line})` : ""}`);
      }
      if (report.loadError) console.log(`load: ${report.loadError}`);
      if (result) {
        const why = result.message ? ` (${result.message})` : "";
        console.log(
          `game: ${result.outcome}${why}, ${result.steps} moves, score ${result.score}, ` +
            `max tile ${result.maxTile}, ${result.seconds.toFixed(2)} s`,
        );
        console.log(renderText(result.board));
      } else {
        console.log("game: nothing to run");
      }
      for (const [name, value] of Object.entries(scored.rewards)) {
        console.log(`reward ${name}: ${Number(value.toFixed(4))}`);
      }
    } finally {
      await pool.close();
    }
  });
}
