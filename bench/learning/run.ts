/**
 * The learning evidence for the tiny policy: train it with `rl2048 train` (the tiny preset
 * unless --preset/--set say otherwise), keep the learning curve (curve.json, curve.png), then
 * sample many programs from the warm start and from the trained policy and play them all on
 * the same held-out games (eval.json): mean score, max-tile histogram, win rate and outcome
 * shares, with standard errors over programs.
 *
 *   npx tsx bench/learning/run.ts --name cpu --steps 150 [--samples 256] [--games 4]
 *       [--preset tiny] [--set key=value ...] [--resume] [--eval-only]
 *
 * --resume continues the run's last checkpoint (a run cut short, e.g. by a device's time limit).
 * Writes bench/learning/<name>/ (the training run itself goes to .cache/learning-<name>/).
 */
import { spawnSync } from "node:child_process";
import { cpus } from "node:os";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import type { Estimate, Quality } from "../../src/corpus/quality.ts";
import { REPO_ROOT, enginePython } from "../../src/model/python.ts";
import { heldOutEvaluation } from "../../src/policy/heldOut.ts";
import { listCheckpoints } from "../../src/train/checkpoints.ts";
import { parseConfig, readConfigFile } from "../../src/train/config.ts";
import { modelFolder } from "../../src/train/session.ts";

const { values } = parseArgs({
  options: {
    name: { type: "string", default: "cpu" },
    steps: { type: "string", default: "150" },
    samples: { type: "string", default: "256" },
    games: { type: "string", default: "4" },
    preset: { type: "string", default: "tiny" },
    set: { type: "string", multiple: true, default: [] },
    resume: { type: "boolean", default: false },
    "eval-only": { type: "boolean", default: false },
  },
});

const CURVE_KEYS = [
  "step",
  "reward",
  "reward_std",
  "frac_reward_zero_std",
  "kl",
  "entropy",
  "completions/mean_length",
  "completions/clipped_ratio",
  "sampling/rounds",
];

function device(): string {
  const gpu = spawnSync("nvidia-smi", ["--query-gpu=name", "--format=csv,noheader"], {
    encoding: "utf8",
  });
  const cpu = `${cpus()[0]?.model ?? "unknown CPU"} (${cpus().length} cores)`;
  return gpu.status === 0 && gpu.stdout.trim()
    ? `${gpu.stdout.trim().split("\n")[0]}, ${cpu}`
    : cpu;
}

const outDir = resolve(REPO_ROOT, "bench/learning", values.name);
const runParent = resolve(REPO_ROOT, ".cache");
const runName = `learning-${values.name}`;
const runDir = join(runParent, runName);
mkdirSync(outDir, { recursive: true });

const started = performance.now();
if (!values["eval-only"]) {
  const args = ["bin/rl2048.js", "train", "--preset", values.preset, "--steps", values.steps];
  args.push("--output-dir", runParent, "--run-name", runName);
  if (values.resume) args.push("--resume", runDir);
  for (const s of values.set) args.push("--set", s);
  const train = spawnSync(process.execPath, args, { cwd: REPO_ROOT, stdio: "inherit" });
  if (train.status !== 0) throw new Error(`training failed (exit ${train.status})`);
}
const trainSeconds = (performance.now() - started) / 1000;

const rows = readFileSync(join(runDir, "metrics.jsonl"), "utf8")
  .split("\n")
  .filter(Boolean)
  .map((line) => JSON.parse(line) as Record<string, number>)
  .map((m) =>
    Object.fromEntries(
      Object.keys(m)
        .filter((k) => CURVE_KEYS.includes(k) || /^rewards\/[^/]+\/mean$/.test(k))
        .map((k) => [k, m[k]]),
    ),
  );
copyFileSync(join(runDir, "metrics.jsonl"), join(outDir, "metrics.jsonl"));
const where = device();
writeFileSync(
  join(outDir, "curve.json"),
  JSON.stringify({ device: where, train_seconds: trainSeconds, rows }, null, 1) + "\n",
);
const plot = spawnSync(enginePython(), [join(REPO_ROOT, "bench/learning/plot.py"), outDir], {
  stdio: "inherit",
});
if (plot.status !== 0)
  console.error("plot.py failed (is matplotlib installed? pip install matplotlib)");

const config = parseConfig(readConfigFile(join(runDir, "config.yaml")));
const modelDir = await modelFolder(config);
const last = listCheckpoints(runDir).at(-1);
if (!last) throw new Error(`${runDir} has no checkpoint`);
const common = {
  config,
  modelDir,
  samples: Number(values.samples),
  gamesPerProgram: Number(values.games),
  firstGameSeed: 5_000_000,
  samplingSeed: 12345,
};
const progress = (label: string) => (done: number, total: number) => {
  if (done % 32 === 0 || done === total)
    console.error(`${label}: ${done}/${total} programs played`);
};
const warm = await heldOutEvaluation({ ...common, onProgress: progress("warm start") });
const trained = await heldOutEvaluation({
  ...common,
  checkpoint: last.path,
  onProgress: progress(`trained (step ${last.step})`),
});

function difference(a: Estimate, b: Estimate) {
  const se = Math.sqrt(a.se ** 2 + b.se ** 2);
  return { delta: b.mean - a.mean, se, z: se > 0 ? (b.mean - a.mean) / se : 0 };
}
const evaluation = {
  device: where,
  date: new Date().toISOString().slice(0, 10),
  checkpoint: `step ${last.step}`,
  samples: common.samples,
  games_per_program: common.gamesPerProgram,
  game: config.game,
  first_game_seed: common.firstGameSeed,
  warm_start: { extracted: warm.extracted, ...warm.quality },
  trained: { extracted: trained.extracted, ...trained.quality },
  trained_minus_warm: {
    score: difference(warm.quality.score, trained.quality.score),
    log2_max_tile: difference(warm.quality.log2MaxTile, trained.quality.log2MaxTile),
    win_rate: difference(warm.quality.winRate, trained.quality.winRate),
  },
};
writeFileSync(join(outDir, "eval.json"), JSON.stringify(evaluation, null, 1) + "\n");

const line = (label: string, q: Quality) =>
  `${label}: score ${q.score.mean.toFixed(0)} ± ${q.score.se.toFixed(0)}, max tile 2^${q.log2MaxTile.mean.toFixed(2)} ± ${q.log2MaxTile.se.toFixed(2)}, win ${(100 * q.winRate.mean).toFixed(1)}%`;
console.log(line("warm start", warm.quality));
console.log(line(`trained (step ${last.step})`, trained.quality));
const d = evaluation.trained_minus_warm.score;
console.log(
  `score difference ${d.delta.toFixed(0)} ± ${d.se.toFixed(0)} (${d.z.toFixed(1)} standard errors) on ${where}`,
);
