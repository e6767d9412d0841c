/**
 * `rl2048 corpus`: writes a seeded corpus of Python 2048 strategies as JSONL (one
 * `{family, params, text}` per line), or with `--report` measures each family in the sandbox
 * on held-out program and game seeds.
 */
import { cpus } from "node:os";
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { Presets, SingleBar } from "cli-progress";
import { Command } from "commander";
import { z } from "zod";
import { FAMILIES, generateCorpus } from "../corpus/corpus.ts";
import { familyReport, type FamilyReport } from "../corpus/report.ts";
import { KEY_PRESETS } from "../game/keys.ts";
import { SandboxPool } from "../strategy/sandboxPool.ts";
import { OUTCOMES } from "../strategy/types.ts";
import { parseOptions, UserError } from "./userError.ts";

const count = z.coerce.number().int().positive();
const Options = z.object({
  n: count.optional(),
  out: z.string().min(1).optional(),
  seed: z.coerce.number().int(),
  keys: z.enum(["bepo", "wasd"]),
  report: z.boolean().default(false),
  programs: count,
  games: count,
  size: z.coerce.number().int().min(2).max(16),
  json: z.boolean().default(false),
});
type Options = z.infer<typeof Options>;

/** Program seeds of the report start here; the corpus draws its own from the --seed stream. */
const REPORT_PROGRAM_SEED = 1_000_000;
const REPORT_GAME_SEED = 1_000_000;

export function corpusCommand(): Command {
  return new Command("corpus")
    .description(
      "Generate a seeded corpus of Python 2048 strategies (JSONL: family, params, text), or report each family's quality",
    )
    .option("--n <count>", "number of programs")
    .option("--out <file>", "JSONL file to write")
    .option("--seed <seed>", "random seed", "0")
    .option("--keys <preset>", "move keys the programs answer with: bepo or wasd", "wasd")
    .option("--report", "measure each family in the sandbox instead of writing a corpus")
    .option("--programs <n>", "report: programs per family", "12")
    .option("--games <n>", "report: games per program", "4")
    .option("--size <n>", "report: board size (target 2048, p4 0.1)", "4")
    .option("--json", "report: print one JSON object")
    .action(async (raw: Record<string, unknown>) => {
      const options = parseOptions(Options, raw);
      if (options.report) await report(options);
      else write(options);
    });
}

function write({ n, out, seed, keys }: Options): void {
  if (n === undefined || out === undefined) {
    throw new UserError("give --n and --out to write a corpus (or --report)");
  }
  const records = generateCorpus({ n, seed, keys: KEY_PRESETS[keys] });
  mkdirSync(dirname(out), { recursive: true });
  const temp = `${out}.tmp-${process.pid}`;
  writeFileSync(temp, records.map((r) => JSON.stringify(r)).join("\n") + "\n");
  renameSync(temp, out);
  const counts = new Map<string, number>();
  for (const r of records) counts.set(r.family, (counts.get(r.family) ?? 0) + 1);
  const summary = [...counts].map(([family, c]) => `${family} ${c}`).join(", ");
  console.log(`wrote ${n} programs to ${out} (${summary})`);
}

async function report(options: Options): Promise<void> {
  const setting = { size: options.size, target: 2048, p4: 0.1, keys: options.keys };
  const pool = await SandboxPool.start();
  const bar = new SingleBar(
    { format: "report [{bar}] {value}/{total} programs", stream: process.stderr },
    Presets.shades_classic,
  );
  bar.start(options.programs * FAMILIES.length, 0);
  const started = performance.now();
  let result: FamilyReport;
  try {
    result = await familyReport(
      pool,
      {
        setting,
        programsPerFamily: options.programs,
        gamesPerProgram: options.games,
        programSeed: REPORT_PROGRAM_SEED + options.seed,
        gameSeed: REPORT_GAME_SEED + options.seed,
      },
      () => bar.increment(),
    );
  } finally {
    bar.stop();
    await pool.close();
  }
  const seconds = (performance.now() - started) / 1000;
  const device = cpus()[0]?.model ?? "unknown CPU";
  if (options.json) {
    console.log(JSON.stringify({ setting, ...options, seconds, device, families: result }));
    return;
  }
  console.log(
    `${options.programs} programs per family, ${options.games} games each, ${setting.size}x${setting.size}, target 2048`,
  );
  for (const family of FAMILIES) {
    const q = result[family];
    const tiles = Object.entries(q.maxTiles)
      .sort(([a], [b]) => Number(a) - Number(b))
      .map(([tile, n]) => `${tile}:${n}`)
      .join(" ");
    const outcomes = OUTCOMES.filter((o) => q.outcomes[o] > 0)
      .map((o) => `${o} ${(100 * q.outcomes[o]).toFixed(0)}%`)
      .join(", ");
    console.log(
      `${family.padEnd(7)} score ${q.score.mean.toFixed(0)} ± ${q.score.se.toFixed(0)}, ` +
        `max tile 2^${q.log2MaxTile.mean.toFixed(2)} ± ${q.log2MaxTile.se.toFixed(2)}, ` +
        `win ${(100 * q.winRate.mean).toFixed(1)}%`,
    );
    console.log(`        max tiles ${tiles}`);
    console.log(`        outcomes ${outcomes}`);
  }
  console.log(`${seconds.toFixed(0)}s on ${device}`);
}
